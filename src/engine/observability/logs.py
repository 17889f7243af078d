"""Structured logs: JSON lines (``TETHER_LOG_FORMAT=json``) or text, each record carrying the IDs of the run,
webhook delivery and integration it was logged for (and the OpenTelemetry trace when a span is active), and scrubbed
of secrets at the sink.

The IDs travel in a context variable, set where a run executes (``engine.runs.execution``) and where a delivery is
processed (``engine.webhooks.deliveries``); asyncio tasks and ``anyio.to_thread`` inherit it, so a line logged from
anywhere below those calls carries them. Secrets are scrubbed twice over: the values of the ``SecretStr`` fields of
every credential slot the Keystore opens (known by the slot schemas, so no guessing) and token-shaped text
(``Authorization`` values, ``access_token=`` and its kin in URLs, forms and JSON), from the message, exception text
and stack of every record, whoever logged it. Exceptions stay logged by type only (``engine.processes.TypeOnly``);
this is the second line, for what reaches a handler without that filter.

Imports nothing of the engine: the Keystore (``engine.custody``) notes secrets here.
"""

from __future__ import annotations

import contextvars
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import re2
from pydantic import BaseModel, SecretStr

try:  # opentelemetry-api is optional: the trace ID is logged only where tracing is installed
    from opentelemetry import trace as _otel_trace
except ImportError:  # pragma: no cover - installed in the project's environment
    _otel_trace = None

REDACTED = "[redacted]"
#: The IDs a record may carry, in the order the text format prints them.
ID_FIELDS = ("run_id", "delivery_id", "integration_id")
#: Shorter values are not scrubbed as known secrets (they would blank out ordinary words); the execution path's own
#: message scrubbing (``describe_error``) draws the line at the same length.
MIN_SECRET_LENGTH = 4
#: Known secret values remembered process-wide after their run or delivery is over, for lines logged outside its
#: context (a queue library's own error line after the actor returned); bounded, the oldest go first.
RECENT_SECRETS = 512
#: uvicorn's access log, whose records keep their arguments (its formatter reads them).
ACCESS_LOGGER = "uvicorn.access"


class _Scope:
    __slots__ = ("ids", "secrets")

    def __init__(self, ids: dict[str, str], secrets: list[str]) -> None:
        self.ids = ids
        self.secrets = secrets


_scope: contextvars.ContextVar[_Scope | None] = contextvars.ContextVar("tether_log_scope", default=None)
_recent: OrderedDict[str, None] = OrderedDict()
_recent_lock = threading.Lock()
_process: set[str] = set()
_sorted: tuple[str, ...] | None = None


class log_context:
    """Records logged inside carry ``ids`` (``run_id``, ``delivery_id``, ``integration_id``) besides the enclosing
    scope's, and are scrubbed of the secrets noted inside (``note_secrets``).

    A class rather than a generator context manager: every queued run enters one, and this is half the cost."""

    __slots__ = ("_ids", "_scope", "_token")

    def __init__(self, **ids: str | None) -> None:
        self._ids = ids

    def __enter__(self) -> None:
        outer = _scope.get()
        merged = dict(outer.ids) if outer is not None else {}
        merged.update({k: v for k, v in self._ids.items() if v})
        self._scope = _Scope(merged, list(outer.secrets) if outer is not None else [])
        self._token = _scope.set(self._scope)

    def __exit__(self, *_exc: object) -> None:
        _scope.reset(self._token)
        _remember(self._scope.secrets)


def add_log_ids(**ids: str | None) -> None:
    """Add IDs learnt inside a ``log_context`` (a delivery's integration, known once its row is read)."""
    scope = _scope.get()
    if scope is not None:
        scope.ids.update({k: v for k, v in ids.items() if v})


def current_ids() -> dict[str, str]:
    """The IDs of the current context, with ``trace_id``/``span_id`` of the active OpenTelemetry span if any."""
    scope = _scope.get()
    ids = dict(scope.ids) if scope is not None else {}
    if _otel_trace is not None:
        span = _otel_trace.get_current_span().get_span_context()
        if span.is_valid:
            ids["trace_id"] = format(span.trace_id, "032x")
            ids["span_id"] = format(span.span_id, "016x")
    return ids


def note_secrets(values: Iterable[str]) -> None:
    """Scrub ``values`` from every record logged in the current context, and after it (``RECENT_SECRETS``)."""
    fresh = [v for v in values if v and len(v) >= MIN_SECRET_LENGTH]
    if not fresh:
        return
    scope = _scope.get()
    if scope is not None:
        scope.secrets.extend(v for v in fresh if v not in scope.secrets)
    else:
        _remember(fresh)


def note_process_secrets(values: Iterable[str]) -> None:
    """Scrub ``values`` from every record of this process, for good: operator secrets (an OAuth app's
    ``client_secret``, read once at start-up), which any refresh or token exchange may echo."""
    global _sorted
    with _recent_lock:
        _sorted = None
        _process.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)


def slot_secrets(model: BaseModel) -> list[str]:
    """The values of ``model``'s ``SecretStr`` fields, in nested models, lists and dicts too: what a credential slot's
    schema says is secret (its ``token_type`` or ``scopes`` are not)."""
    return [leaf.get_secret_value() for leaf in leaves(model) if isinstance(leaf, SecretStr)]


def leaves(value: Any) -> Iterator[Any]:
    """What ``value`` holds that is not a container: the fields of models, the values of dicts, the items of lists."""
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from leaves(getattr(value, name, None))
    elif isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from leaves(item)
    else:
        yield value


def _remembered() -> tuple[str, ...]:
    """The remembered and process-wide secrets, longest first; sorted again only after a change (a log line checks
    them all, and sorting 500 values on each line cost ten times the scrubbing itself)."""
    global _sorted
    with _recent_lock:
        if _sorted is None:
            _sorted = tuple(sorted({*_recent, *_process}, key=len, reverse=True))
        return _sorted


def _remember(values: Iterable[str]) -> None:
    global _sorted
    if not values:
        return  # nothing new: keep the sorted cache (a run without secrets must not make the next line sort again)
    with _recent_lock:
        _sorted = None
        for value in values:
            _recent[value] = None
            _recent.move_to_end(value)
        while len(_recent) > RECENT_SECRETS:
            _recent.popitem(last=False)


def forget_recent_secrets() -> None:
    """Tests: start from no remembered secrets."""
    global _sorted
    with _recent_lock:
        _sorted = None
        _recent.clear()


# -- token-shaped text ---------------------------------------------------------------------------------------------

#: Names whose values are credentials wherever they appear as ``name=value`` (query strings, form bodies) or as a
#: JSON/dict key.
TOKEN_NAMES = (
    "access_token|refresh_token|id_token|client_secret|client_assertion|code_verifier|assertion|password|api_key"
    "|apikey|private_key|signing_secret"
)
#: Header names whose values are credentials.
HEADER_NAMES = "authorization|proxy-authorization|x-api-key|api-key|cookie|set-cookie"
# RE2, linear in the text: log messages may quote anything a provider or a caller sent.
_PARAM = re2.compile(rf"(?i)\b({TOKEN_NAMES})=[^&\s\"'#,;]+")
_KEYED = re2.compile(rf"(?i)([\"']({TOKEN_NAMES}|{HEADER_NAMES})[\"']\s*:\s*)(?:\"[^\"]*\"|'[^']*')")
_HEADER = re2.compile(rf"(?im)(^|[\s\[{{(,;])({HEADER_NAMES})(\s*[:=]\s*)[^\"'\r\n,}}\]]+")
# Case-sensitive, as headers spell the schemes: "basic authentication" or "token endpoint" in prose stay readable.
_SCHEME = re2.compile(r"\b(Bearer|bearer|Basic)\s+[A-Za-z0-9\-._~+/]{8,}=*")


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` without the known ``secrets`` (and those of the current context and remembered ones) and without
    token-shaped values."""
    scope = _scope.get()
    local = [*secrets, *(scope.secrets if scope is not None else ())]
    # Shapes first: a known secret that is also a word of the text (an operator's client secret "secret") would
    # otherwise blank out the name in "client_secret=…" and leave the value after it unrecognised.
    text = _shapes(text)
    replaced = False
    # Longest first: a secret that contains another is removed whole.
    for secret in (*sorted(local, key=len, reverse=True), *_remembered()):
        if len(secret) >= MIN_SECRET_LENGTH and secret in text:
            text = text.replace(secret, REDACTED)
            replaced = True
    # And again after: a secret with "=" or ":" in it could have been split by the first pass.
    return _shapes(text) if replaced else text


def _shapes(text: str) -> str:
    try:
        return _scrub_shapes(text)
    except (TypeError, ValueError, UnicodeError):
        # RE2 takes UTF-8: a lone surrogate (an undecodable byte escaped into the text) cannot be encoded as is.
        return _scrub_shapes(text.encode("utf-8", "replace").decode("utf-8"))


def _scrub_shapes(text: str) -> str:
    if "=" in text:
        text = _PARAM.sub(rf"\1={REDACTED}", text)
    if ":" in text or "=" in text:
        text = _KEYED.sub(rf'\1"{REDACTED}"', text)
        text = _HEADER.sub(rf"\1\2\3{REDACTED}", text)
    return _SCHEME.sub(rf"\1 {REDACTED}", text)


# -- at the sink -----------------------------------------------------------------------------------------------------


class ScrubSecrets(logging.Filter):
    """Scrub the message, exception text and stack of every record (``scrub``); install it on every handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception as exc:  # a malformed call (arguments that do not fit): log that, not its arguments
            message = f"unformattable log message ({type(exc).__name__})"
        if record.name == ACCESS_LOGGER and isinstance(record.args, tuple):
            # uvicorn's access formatter reads its fields from the arguments: scrub each (the path holds the query)
            record.args = tuple(scrub(a) if isinstance(a, str) else a for a in record.args)
        else:
            record.msg, record.args = scrub(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


class LogContext(logging.Filter):
    """Copy the context's IDs onto the record (as attributes, and as ``tether_context``: `` run_id=… …`` for a text
    format); a filter runs in the thread that logged, where the context is."""

    def filter(self, record: logging.LogRecord) -> bool:
        ids = current_ids()
        record.tether_ids = ids
        record.tether_context = "".join(f" {k}={v}" for k, v in ids.items())
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, the context's IDs, and
    ``exc_type``/``exception`` when a record still has an exception."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = getattr(record, "tether_ids", None)
        line.update(ids if ids is not None else current_ids())
        if record.exc_info:
            kind = record.exc_info[0]
            line["exc_type"] = kind.__name__ if kind is not None else "exception"
            if not record.exc_text:
                record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """A text format whose lines end with the context's IDs (``tether_context``), for a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        if not hasattr(record, "tether_context"):
            LogContext().filter(record)
        return super().format(record)


def sink_filters() -> list[logging.Filter]:
    """The filters every handler of a long-running command carries, after ``TypeOnly``."""
    return [ScrubSecrets(), LogContext()]
