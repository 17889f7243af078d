"""What a provider's answer says about its rate limit: a wait (``Retry-After``, a window with nothing remaining)
and a rate (the windows of a policy), read from ``Retry-After``, ``X-RateLimit-*`` and the IETF ``RateLimit-*``
fields (draft-ietf-httpapi-ratelimit-headers, in both its older ``RateLimit-Limit``/``-Remaining``/``-Reset`` and
its newer ``RateLimit``/``RateLimit-Policy`` structured forms, each with several windows).

Numbers are ASCII digits only (``ascii_int``): a hostile header cannot make a wait of ``inf``, ``nan`` or
Arabic-Indic digits. Parsing splits on separators, so its work is linear in the header's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from engine.kit.inputs import ascii_int

Headers = httpx.Headers | Mapping[str, str]
#: A reset at or past this is an epoch time (GitHub's ``X-RateLimit-Reset``), below it a delta in seconds.
EPOCH_THRESHOLD = 1_000_000_000
#: The statuses whose ``Retry-After`` is a rate limit's wait (503: Graph's and others' throttling).
THROTTLED = (429, 503)


@dataclass(frozen=True)
class Learned:
    """A pause every caller of the budget should take (seconds), and a rate the provider announced (per second)."""

    pause: float | None = None
    rate: float | None = None


def header(headers: Headers, name: str) -> str:
    """A header's value by lower-case ``name``, from httpx's headers or a plain mapping (any case)."""
    if isinstance(headers, httpx.Headers):
        return headers.get(name, "")
    return next((str(value) for key, value in headers.items() if key.lower() == name), "")


def retry_after_seconds(headers: Headers, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta or HTTP date) or ``X-RateLimit-Reset`` (epoch or delta).

    Numbers are ASCII digits only (RFC 9110 ``delta-seconds``): ``float()`` also takes ``inf``, ``nan``, ``1e400``,
    ``1_0`` and Arabic-Indic digits, and ``'²'.isdigit()`` is true while ``float('²')`` raises, so a hostile or broken
    provider header could otherwise defer a run forever or crash the worker that reads it. A plain mapping
    (botocore's decoded headers) is read as it is: ``httpx.Headers`` would refuse a non-ASCII value.
    """
    value = header(headers, "retry-after").strip()
    if value:
        seconds = ascii_int(value)
        if seconds is not None:
            return float(seconds)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError, OverflowError):
            when = None
        if when is not None:
            when = when if when.tzinfo else when.replace(tzinfo=UTC)
            return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
    return _reset_seconds(header(headers, "x-ratelimit-reset"), now)


def learn(status: int, headers: Headers, *, now: datetime | None = None) -> Learned:
    """What an answer teaches the budget: a pause after a throttled answer or an exhausted window, and the
    strictest rate among the windows the provider announced."""
    pause: float | None = None
    if status in THROTTLED:
        pause = retry_after_seconds(headers, now=now)
        if pause is None and status == 429:
            pause = 1.0  # throttled without saying for how long: a short pause, learned again on the next answer
    for remaining, reset in _windows_left(headers, now):
        if remaining == 0 and reset is not None:
            pause = max(pause or 0.0, reset)
    rates = [quota / window for quota, window in _policies(headers) if window > 0]
    return Learned(pause=pause, rate=min(rates) if rates else None)


def _reset_seconds(value: str, now: datetime | None) -> float | None:
    reset = ascii_int(value.strip())
    if reset is None:
        return None
    if reset > EPOCH_THRESHOLD:
        return max(0.0, reset - (now or datetime.now(UTC)).timestamp())
    return float(reset)


def _windows_left(headers: Headers, now: datetime | None) -> list[tuple[int, float | None]]:
    """(remaining, seconds to reset) of every window the answer reports."""
    found: list[tuple[int, float | None]] = []
    for prefix in ("x-ratelimit-", "ratelimit-"):
        remaining = ascii_int(header(headers, prefix + "remaining").split(",")[0].strip())
        if remaining is not None:
            found.append((remaining, _reset_seconds(header(headers, prefix + "reset").split(",")[0], now)))
    for item in _items(header(headers, "ratelimit")):
        # draft-05/06: ``limit=100, remaining=0, reset=30`` (one window spread over the items);
        # draft-07+: ``"default";r=0;t=30`` (one window per item).
        params = item[1]
        if "r" in params:
            found.append((params["r"], float(params["t"]) if "t" in params else None))
    legacy = _flat(header(headers, "ratelimit"))
    if "remaining" in legacy:
        found.append((legacy["remaining"], float(legacy["reset"]) if "reset" in legacy else None))
    return found


def _policies(headers: Headers) -> list[tuple[int, int]]:
    """(quota, window seconds) of every policy: ``RateLimit-Policy`` (``"default";q=100;w=60`` or ``100;w=60``)
    and the older ``RateLimit-Limit: 100, 100;w=60`` (its bare first item has no window of its own)."""
    found: list[tuple[int, int]] = []
    for name in ("ratelimit-policy", "ratelimit-limit", "x-ratelimit-policy"):
        for token, params in _items(header(headers, name)):
            quota = params.get("q", ascii_int(token))
            if quota is not None and "w" in params:
                found.append((quota, params["w"]))
    return found


def _items(value: str) -> list[tuple[str, dict[str, int]]]:
    """A structured-field list as (token, integer parameters), bounded: at most 16 items of 16 parameters."""
    items: list[tuple[str, dict[str, int]]] = []
    for raw in value.split(",")[:16]:
        token, *params = raw.split(";")[:17]
        parsed: dict[str, int] = {}
        for param in params:
            key, _, number = param.partition("=")
            as_int = ascii_int(number.strip())
            if as_int is not None:
                parsed[key.strip().lower()] = as_int
        items.append((token.strip().strip('"'), parsed))
    return items


def _flat(value: str) -> dict[str, int]:
    """``name=value`` pairs of draft-05's ``RateLimit: limit=100, remaining=0, reset=30``."""
    pairs: dict[str, int] = {}
    for raw in value.split(",")[:16]:
        key, sep, number = raw.partition("=")
        as_int = ascii_int(number.strip()) if sep and ";" not in raw else None
        if as_int is not None:
            pairs[key.strip().lower()] = as_int
    return pairs
