"""The standard suite: the checks every definition passes against its recorded cassettes, offline.

Each check runs the engine's own code paths on a scratch engine (``engine.testing.harness``) with the provider's
answers replayed at the egress seam (``engine.testing.replay``); the 401 and 429 variants are derived from a
recorded cassette by rewriting its responses. The checks, by stable name:

==========================  =================================================================================
``health.passes``           the connection's health check (``Setup.validate``) passes on the recorded answers
``health.unauthorized``     the same check answered 401 moves the integration to ``reconnect_required``
``auth.refreshes``          an expired OAuth 2.0 token is refreshed once, stored (rotated refresh token included)
                            and the check's calls carry the new one
``rate_limit.retry_after``  an operation answered 429 with ``Retry-After`` is deferred by that many seconds
``ingest.pages_to_end``     an ingest run requests every recorded page (no interaction left unplayed)
``ingest.repeated_cursor``  a provider that hands back the same cursor forever does not keep the run paging
``ingest.resumes``          a run after one that saved a cursor starts from it, not from the first page again
``ingest.maps_records``     every record the run received is mapped or filtered: no reject
``webhook.verifies``        each webhook accepts an example delivery signed the provider's way
``webhook.refuses_tampered``  and refuses it with the body or the signature altered
``disconnect.revokes``      a ``Revoke`` connection's disconnect calls the provider; ``NoRevocation`` says why
``secrets.not_logged``      no secret (a canary credential value) is in a log record, a request URL or a run error
``secrets.cassette_scrubbed``  the cassettes hold no credential (scrubbing them again changes nothing)
==========================  =================================================================================

A definition that cannot pass a check declares why: ``Definition(standard_suite_skips={"check": "reason"})``.

Cassettes live in one folder per definition (``tests/cassettes/<definition>/``); ``metadata.kind`` says what each
holds: ``operation`` (the default; ``metadata.operation`` names it, ``metadata.connection`` the connection it was
recorded through), ``disconnect`` or ``webhook`` (``metadata.webhook``: example deliveries as requests).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlmodel import col, select

from engine.api.principal import Principal
from engine.authoring.connections import PUBLIC_URL, NoRevocation, OAuth2
from engine.authoring.definition import Definition
from engine.authoring.operations import Operation
from engine.authoring.suite_checks import STANDARD_SUITE_CHECKS
from engine.integrations.setup import Setup
from engine.kit.egress import tapped
from engine.store.tables import AuditEvent, Health, IngestReject, IntegrationStatus, OperationState, Run
from engine.testing.cassettes import Cassette, CassetteError, Interaction, Response, load_cassette
from engine.testing.harness import TENANT, Harness, SuiteSetupError
from engine.testing.replay import ReplayTap
from engine.testing.scrub import scrub_interactions
from engine.testing.signing import can_sign, signed_delivery
from engine.webhooks.verification import (
    BearerToken,
    InvalidSignature,
    SharedSecretHeader,
    StaleDelivery,
    lower_headers,
    verify,
)

__all__ = ["CHECKS", "CheckResult", "SuiteFailed", "SuiteReport", "arun_suite", "run_suite"]

CHECKS = STANDARD_SUITE_CHECKS
#: The Retry-After the 429 variant carries: not a round number, so a default delay cannot pass for it.
RETRY_AFTER = 37
PRINCIPAL = Principal(tenant_id=TENANT, role="server")
log = logging.getLogger("tether.testing.suite")


class SuiteFailed(AssertionError):
    """The definition failed one or more checks; the message names each check and what went wrong."""


@dataclass(frozen=True)
class CheckResult:
    check: str
    subject: str
    ok: bool
    message: str = ""
    skipped: str = ""

    def line(self) -> str:
        state = "skip" if self.skipped else ("ok" if self.ok else "FAIL")
        detail = self.skipped or self.message
        return f"[{self.check}] {state} {self.subject}" + (f": {detail}" if detail else "")


@dataclass
class SuiteReport:
    definition: str
    results: list[CheckResult] = field(default_factory=list)

    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.ok and not r.skipped]

    @property
    def ok(self) -> bool:
        return not self.failures()

    def text(self) -> str:
        return "\n".join(r.line() for r in self.results)

    def raise_for_failures(self) -> None:
        failed = self.failures()
        if failed:
            lines = "\n".join("  " + r.line() for r in failed)
            raise SuiteFailed(f"the standard suite failed for {self.definition} ({len(failed)} check(s)):\n{lines}")


# -- log capture -------------------------------------------------------------------------------------------------


class _Capture(logging.Handler):
    """Every record of every logger while the suite runs, formatted as a sink would (message and traceback)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception as exc:  # a record whose arguments do not fit its format: keep what can be seen
            text = f"{record.msg!r} {record.args!r} ({type(exc).__name__})"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + "".join(traceback.format_exception(record.exc_info[1]))
        self.lines.append(f"{record.name}: {text}")


@contextmanager
def _capturing() -> Iterator[_Capture]:
    handler = _Capture()
    root = logging.getLogger()
    level = root.level
    # INFO, so httpx's "HTTP Request: GET <url>" lines (where a token in a query string shows) are seen.
    root.setLevel(min(level, logging.INFO) if level else logging.INFO)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# -- the suite ---------------------------------------------------------------------------------------------------


def _cassettes(directory: Path) -> list[tuple[Path, Cassette]]:
    return [(path, load_cassette(path)) for path in sorted(directory.glob("*.yaml"))]


def _unauthorized(response: Response) -> Response:
    return response.with_status(
        401,
        headers={"Content-Type": "application/json"},
        body={"ok": False, "error": "invalid_auth", "message": "the credential was refused"},
    )


def _rate_limited(response: Response) -> Response:
    """The recorded answer as a 429 saying "come back in 37 s": in ``Retry-After``, and in the provider's own window
    headers where the recording has them (Okta and GitHub announce a reset time, ``X-Rate-Limit-Reset``), so a
    definition reading either finds the same wait; a recorded reset, now in the past, would contradict it."""
    window = {}
    for name in response.raw_headers:
        flat = name.lower().replace("-", "")
        if flat == "xratelimitreset":
            window[name] = str(int(time.time()) + RETRY_AFTER)
        elif flat == "xratelimitremaining":
            window[name] = "0"
    return response.with_status(
        429,
        headers={"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER), **window},
        body={"ok": False, "error": "ratelimited", "message": "too many requests"},
    )


def _rewritten(interactions: list[Interaction], first_only: bool, change: Callable[[Response], Response]) -> list:
    return [
        replace(item, response=change(item.response)) if (index == 0 or not first_only) else item
        for index, item in enumerate(interactions)
    ]


def _paged(interactions: list[Interaction]) -> bool:
    """Whether some method and path were requested more than once: a list read page by page."""
    seen: set[tuple[str, str]] = set()
    for item in interactions:
        key = (item.request.method, item.request.path)
        if key in seen:
            return True
        seen.add(key)
    return False


class _Suite:
    def __init__(self, definition: Definition, directory: Path, workdir: Path) -> None:
        self.definition = definition
        self.directory = directory
        self.workdir = workdir
        self.report = SuiteReport(definition.id)
        self.skips = dict(definition.standard_suite_skips)
        self.taps: list[ReplayTap] = []
        self.canaries: list[str] = []
        self.harnesses: list[Harness] = []

    # -- plumbing --

    def result(self, check: str, subject: str, ok: bool, message: str = "") -> None:
        self.report.results.append(CheckResult(check, subject, ok, message))

    def skipped(self, check: str) -> bool:
        reason = self.skips.get(check)
        if reason:
            self.report.results.append(CheckResult(check, self.definition.id, True, skipped=reason))
        return bool(reason)

    def harness(self, metadata: dict[str, Any]) -> Harness:
        harness = Harness(
            self.definition, self.workdir / f"engine{len(self.harnesses)}", operator_config=metadata.get("operator")
        )
        self.harnesses.append(harness)
        return harness

    def tap(self, interactions: list[Interaction], **kwargs: Any) -> ReplayTap:
        tap = ReplayTap(interactions, **kwargs)
        self.taps.append(tap)
        return tap

    async def replayed(self, tap: ReplayTap, call: Awaitable[Any]) -> Any:
        """Await ``call`` with ``tap`` answering its requests (a coroutine runs its body when awaited, so here)."""
        with tapped(tap):
            return await call

    def last_audit(self, harness: Harness, integration_id: str) -> dict[str, Any]:
        with harness.runtime.db.session() as session:
            row = session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.integration_id) == integration_id)
                .order_by(col(AuditEvent.created_at).desc())
            ).first()
        return dict(row.detail) if row is not None else {}

    # -- checks --

    async def run(self) -> SuiteReport:
        unknown = sorted(set(self.skips) - set(CHECKS))
        if unknown:
            self.result("suite.declaration", self.definition.id, False, f"unknown check(s) skipped: {unknown}")
        try:
            found = _cassettes(self.directory) if self.directory.is_dir() else []
        except CassetteError as exc:
            self.result("suite.cassettes", str(self.directory), False, str(exc))
            return self.report
        if not found:
            self.result("suite.cassettes", self.definition.id, False, f"no cassettes in {self.directory}")
            return self.report
        ops = [(p, c) for p, c in found if c.metadata.get("kind", "operation") == "operation"]
        try:
            with _capturing() as capture:
                await self.step("health.passes", self.health(ops))
                await self.step("ingest.pages_to_end", self.ingest(ops))
                await self.step("rate_limit.retry_after", self.rate_limit(ops))
                revocations = [c for _, c in found if c.metadata.get("kind") == "disconnect"]
                await self.step("disconnect.revokes", self.disconnect(ops, revocations))
                self.webhooks([c for _, c in found if c.metadata.get("kind") == "webhook"])
            self.secrets(capture.lines)
            self.scrubbed(found)
        except SuiteSetupError as exc:
            self.result("suite.cassettes", self.definition.id, False, str(exc))
        finally:
            for harness in self.harnesses:
                harness.close()
        return self.report

    async def step(self, check: str, steps: Awaitable[None]) -> None:
        """Run a group of checks; an exception the engine did not turn into a result fails the group's first check
        (by type: its text may hold what the provider sent) instead of ending the suite."""
        try:
            await steps
        except SuiteSetupError:
            raise
        except Exception as exc:
            log.debug("standard suite step %s raised %s", check, type(exc).__name__)
            self.result(check, self.definition.id, False, f"raised {type(exc).__name__} outside the engine's handling")

    def _validate_op(self, metadata: dict[str, Any]) -> type[Operation] | None:
        connection = self.definition.connection(str(metadata.get("connection")))
        return connection.validate if connection is not None else None

    async def health(self, ops: list[tuple[Path, Cassette]]) -> None:
        checked = [
            c
            for _, c in ops
            if (v := self._validate_op(c.metadata)) is not None and v.operation_id() == c.metadata.get("operation")
        ]
        if not checked:
            if not self.skipped("health.passes"):
                self.result("health.passes", self.definition.id, False, "no cassette of a connection's health check")
            for check in ("health.unauthorized", "auth.refreshes"):
                if not self.skipped(check):
                    self.result(check, self.definition.id, False, "no health check cassette to derive from")
            return
        for cassette in checked:
            subject = str(cassette.metadata.get("connection"))
            if not cassette.interactions:
                self.result("health.passes", subject, False, "the health check's cassette holds no interaction")
                continue
            harness = self.harness(cassette.metadata)
            setup = Setup(harness.runtime)
            if not self.skipped("health.passes"):
                integration_id = harness.connect(cassette.metadata)
                ok, row = await self.replayed(
                    self.tap(cassette.interactions), setup.validate(PRINCIPAL, integration_id)
                )
                detail = self.last_audit(harness, integration_id)
                self.result(
                    "health.passes",
                    subject,
                    ok and row.health == Health.valid,
                    "" if ok else f"health {row.health}, code {detail.get('code', '?')}",
                )
            if not self.skipped("health.unauthorized"):
                integration_id = harness.connect(cassette.metadata)
                refused = _unauthorized(cassette.interactions[0].response)
                tap = self.tap(
                    _rewritten(cassette.interactions, False, _unauthorized),
                    fallback=refused,
                    overrides=self._dead_grant(cassette.interactions[0].response),
                )
                _, row = await self.replayed(tap, setup.validate(PRINCIPAL, integration_id))
                detail = self.last_audit(harness, integration_id)
                self.result(
                    "health.unauthorized",
                    subject,
                    row.status == IntegrationStatus.reconnect_required,
                    ""
                    if row.status == IntegrationStatus.reconnect_required
                    else f"the integration is {row.status} (health {row.health}, code {detail.get('code', '?')}), "
                    "not reconnect_required",
                )
            if not self.skipped("auth.refreshes"):
                await self.refresh(harness, setup, cassette, subject)
            self.canaries.extend(harness.canaries)

    def _token_paths(self, connections: Iterable[Any] | None = None) -> set[str]:
        """The token endpoints' paths (a replayed request is matched by path; Tether's own origin for the sandbox)."""
        paths = {
            urlsplit(c.auth.token_url.replace(PUBLIC_URL, "https://tether.invalid")).path
            for c in (self.definition.connections if connections is None else connections)
            if isinstance(c.auth, OAuth2) and c.auth.token_url
        }
        return {path for path in paths if path}

    def _dead_grant(self, template: Response) -> dict[str, Response]:
        """A refresh of a refused grant is answered as RFC 6749 says a dead one is: 400 ``invalid_grant``."""
        answer = template.with_status(
            400,
            headers={"Content-Type": "application/json"},
            body={"error": "invalid_grant", "error_description": "the refresh token is no longer valid"},
        )
        return dict.fromkeys(self._token_paths(), answer)

    async def refresh(self, harness: Harness, setup: Setup, cassette: Cassette, subject: str) -> None:
        """The health check with the access token past its expiry: the token endpoint is answered with a new access
        token and a rotated refresh token (RFC 6749 section 6); the refresh happens once, both new values are
        stored, and the provider's calls after it carry the new access token."""
        connection = self.definition.connection(subject)
        paths = self._token_paths([connection]) if connection is not None else set()
        slot = (
            self.definition.slot(str(cassette.metadata.get("slot") or connection.credential.slot_id()))
            if paths
            else None
        )
        if connection is None or slot is None or not {"refresh_token", "expires_at"} <= set(slot.model_fields):
            self.report.results.append(
                CheckResult(
                    "auth.refreshes", subject, True, skipped="no OAuth 2.0 token that expires: nothing to refresh"
                )
            )
            return
        integration_id = harness.connect(cassette.metadata, expired=True)
        access, rotated = (f"canaryrefreshed{kind}{secrets.token_hex(8)}" for kind in ("access", "refresh"))
        harness.canaries.extend((access, rotated))
        granted = cassette.interactions[0].response.with_status(
            200,
            headers={"Content-Type": "application/json"},
            body={"access_token": access, "token_type": "Bearer", "expires_in": 3600, "refresh_token": rotated},
        )
        tap = self.tap(cassette.interactions, overrides=dict.fromkeys(paths, granted))
        ok, row = await self.replayed(tap, setup.validate(PRINCIPAL, integration_id))
        exchanges = [i for i, sent in enumerate(tap.sent) if urlsplit(sent.url).path in paths]
        after = tap.sent[exchanges[0] + 1 :] if exchanges else []
        stored = harness.runtime.keystore.load(integration_id, slot)
        kept = stored is not None and [
            getattr(stored.slot, name).get_secret_value() if getattr(stored.slot, name, None) is not None else None
            for name in ("access_token", "refresh_token")
        ] == [access, rotated]
        problems = [
            text
            for failed, text in (
                (len(exchanges) != 1, f"{len(exchanges)} token request(s), not one"),
                (bool(exchanges) and b"refresh_token" not in tap.sent[exchanges[0]].content, "no refresh_token grant"),
                (not ok, f"the health check failed after the refresh (health {row.health})"),
                (
                    not any(access in v for sent in after for v in sent.headers.values()),
                    "no call carried the new token",
                ),
                (not kept, "the new access and refresh tokens were not stored"),
            )
            if failed
        ]
        self.result("auth.refreshes", subject, not problems, "; ".join(problems) or f"{len(after)} call(s) after it")

    def _ingest_ops(self, ops: list[tuple[Path, Cassette]]) -> list[tuple[Cassette, type[Operation]]]:
        out = []
        for _, cassette in ops:
            op = self.definition.operation(str(cassette.metadata.get("operation")))
            if op is not None and "ingest" in op.execution_paths():
                out.append((cassette, op))
        return out

    async def ingest(self, ops: list[tuple[Path, Cassette]]) -> None:
        found = self._ingest_ops(ops)
        if not found:
            for check in ("ingest.pages_to_end", "ingest.maps_records", "ingest.resumes", "ingest.repeated_cursor"):
                if not self.skipped(check):
                    self.result(check, self.definition.id, False, "no cassette of an ingest operation")
            return
        for cassette, op in found:
            subject = op.operation_id()
            harness = self.harness(cassette.metadata)
            config = cassette.metadata.get("config")
            integration_id = harness.connect(cassette.metadata)
            tap = self.tap(cassette.interactions)
            result = await self.replayed(
                tap, harness.executor.run_inline(integration_id, subject, trigger="manual", config=config)
            )
            run = result.run
            failed = "" if run.status == "succeeded" else f"the run {run.status}: {run.error_code} {run.error_message}"
            if not self.skipped("ingest.pages_to_end"):
                left = tap.unplayed()
                message = failed or (
                    f"{len(left)} recorded interaction(s) never requested (first: {left[0].request.method} "
                    f"{left[0].request.path})"
                    if left
                    else ""
                )
                self.result("ingest.pages_to_end", subject, not message, message)
            if not self.skipped("ingest.maps_records"):
                message = failed or self._rejects(harness, run.id, run.records_rejected, run.payloads_out)
                self.result("ingest.maps_records", subject, not message, message)
            if not self.skipped("ingest.resumes"):
                await self.resumes(harness, cassette, integration_id, subject, config, tap)
            if not self.skipped("ingest.repeated_cursor"):
                await self.repeated_cursor(harness, cassette, subject, config)
            self.canaries.extend(harness.canaries)

    def _rejects(self, harness: Harness, run_id: str, rejected: int, received: int) -> str:
        """The first reject's schema, position and reason (the pipeline's own words, which name no value)."""
        if not rejected:
            return ""
        with harness.runtime.db.session() as session:
            first = session.exec(
                select(IngestReject).where(col(IngestReject.run_id) == run_id).order_by(col(IngestReject.position))
            ).first()
        where = f"; first: #{first.position} {first.schema_name}/{first.variant} {first.reason_code}" if first else ""
        return f"{rejected} of {received} record(s) rejected{where}"

    async def resumes(
        self, harness: Harness, cassette: Cassette, integration_id: str, subject: str, config: Any, first: ReplayTap
    ) -> None:
        """A second run of the same integration after the recorded one succeeded and saved a cursor. The provider
        has nothing new: each path answers with its last recorded page (an unrecorded path with the recording's
        last answer). The run must succeed and send at least one request the first run did not (one carrying the
        cursor); a run that only repeats the first run's requests lists everything again from page one."""
        with harness.runtime.db.session() as session:
            state = session.exec(
                select(OperationState).where(
                    col(OperationState.integration_id) == integration_id, col(OperationState.operation) == subject
                )
            ).first()
        if state is None or state.cursor is None:
            self.report.results.append(
                CheckResult(
                    "ingest.resumes", subject, True, skipped="the first run saved no cursor: every run lists all"
                )
            )
            return
        latest = {item.request.path: item.response for item in cassette.interactions}
        tap = self.tap([], overrides=latest, fallback=cassette.interactions[-1].response)
        result = await self.replayed(
            tap, harness.executor.run_inline(integration_id, subject, trigger="manual", config=config)
        )
        before = {(sent.method, sent.url, sent.content) for sent in first.sent}
        fresh = [sent for sent in tap.sent if (sent.method, sent.url, sent.content) not in before]
        run = result.run
        unrecorded = sorted({urlsplit(sent.url).path for sent in fresh} - set(latest))
        if not fresh:
            message = f"the second run sent only the first run's requests ({len(tap.sent)}): the cursor was not used"
        elif run.status != "succeeded" and not unrecorded:
            message = f"the second run {run.status}: {run.error_code}"
        else:
            message = ""
        # A cursor read at a path the recording never saw (Drive's changes list after a files listing) had only a
        # stand-in answer: that the run asked from its cursor is the check; how it read the answer is not.
        done = f"{len(fresh)} request(s) from the cursor" + (
            f" ({run.status}: {unrecorded[0]} is not in the recording)" if run.status != "succeeded" else ""
        )
        self.result("ingest.resumes", subject, not message, message or done)

    async def repeated_cursor(self, harness: Harness, cassette: Cassette, subject: str, config: Any) -> None:
        if not _paged(cassette.interactions):
            self.report.results.append(
                CheckResult(
                    "ingest.repeated_cursor",
                    subject,
                    True,
                    skipped="the recording has one page per list: nothing to repeat",
                )
            )
            return
        integration_id = harness.connect(cassette.metadata)
        limit = 3 * len(cassette.interactions) + 10
        tap = self.tap(cassette.interactions, loop=True, limit=limit)
        result = await self.replayed(
            tap, harness.executor.run_inline(integration_id, subject, trigger="manual", config=config)
        )
        looped = result.run.error_code == "cassette_miss" or len(tap.sent) > limit
        self.result(
            "ingest.repeated_cursor",
            subject,
            not looped,
            f"the run kept paging: {len(tap.sent)} requests while every page repeated the first one's cursor"
            if looped
            else f"stopped after {len(tap.sent)} request(s) ({result.run.status} {result.run.error_code})",
        )

    async def rate_limit(self, ops: list[tuple[Path, Cassette]]) -> None:
        if self.skipped("rate_limit.retry_after"):
            return
        candidates = [(c, op) for c, op in self._ingest_ops(ops)]
        candidates += [
            (c, op)
            for _, c in ops
            if (op := self.definition.operation(str(c.metadata.get("operation")))) is not None
            and (c, op) not in candidates
        ]
        if not candidates:
            self.result("rate_limit.retry_after", self.definition.id, False, "no operation cassette to derive a 429")
            return
        cassette, op = candidates[0]
        subject = op.operation_id()
        if not cassette.interactions:
            self.result("rate_limit.retry_after", subject, False, "its cassette holds no interaction to answer 429")
            return
        # An engine of its own: the 429 pauses the provider's budget in that engine's rate governor.
        harness = self.harness(cassette.metadata)
        integration_id = harness.connect(cassette.metadata)
        tap = self.tap(_rewritten(cassette.interactions, True, _rate_limited))
        config = cassette.metadata.get("config")

        async def attempt() -> Any:
            run_id = await harness.executor.dispatch(integration_id, subject, trigger="manual", config=config)
            if run_id not in harness.executor.outcomes:
                await harness.executor.execute(run_id)
            return harness.executor.outcomes[run_id]

        outcome = await self.replayed(tap, attempt())
        # A reset time is whole seconds from the clock: a definition computing the wait from it may be a second off.
        ok = outcome.deferred and outcome.retry_in is not None and abs(outcome.retry_in - RETRY_AFTER) <= 2
        self.result(
            "rate_limit.retry_after",
            subject,
            ok,
            ""
            if ok
            else f"the run was {outcome.status} ({outcome.error_code or 'no error'}, retry in "
            f"{outcome.retry_in}), not deferred by the provider's Retry-After of {RETRY_AFTER}s",
        )
        self.canaries.extend(harness.canaries)

    async def disconnect(self, ops: list[tuple[Path, Cassette]], recorded: list[Cassette]) -> None:
        if self.skipped("disconnect.revokes"):
            return
        names = list(dict.fromkeys(str(c.metadata.get("connection")) for _, c in ops))
        if not names:
            self.result("disconnect.revokes", self.definition.id, False, "no operation cassette names a connection")
        for name in names:
            connection = self.definition.connection(name)
            if connection is None:
                self.result("disconnect.revokes", name, False, "the cassette names no connection of the definition")
                continue
            if isinstance(connection.disconnect, NoRevocation):
                reason = connection.disconnect.reason.strip()
                self.result(
                    "disconnect.revokes",
                    name,
                    bool(reason),
                    f"declares no revocation: {reason[:80]}" if reason else "NoRevocation without a reason",
                )
                continue
            cassette = next((c for c in recorded if c.metadata.get("connection") == name), None)
            if cassette is None:
                self.result("disconnect.revokes", name, False, "declares Revoke but no disconnect cassette is recorded")
                continue
            harness = self.harness(cassette.metadata)
            integration_id = harness.connect(cassette.metadata)
            tap = self.tap(cassette.interactions)
            try:
                await self.replayed(tap, harness.runtime.custody.disconnect(integration_id, actor="suite"))
                error = ""
            except Exception as exc:
                error = f"{type(exc).__name__}: {getattr(exc, 'message', '')}"
            status = harness.integration(integration_id).status
            ok = not error and bool(tap.sent) and status == IntegrationStatus.disconnected
            self.result(
                "disconnect.revokes",
                name,
                ok,
                f"{len(tap.sent)} revocation request(s)"
                if ok
                else f"disconnect {'raised ' + error if error else 'sent nothing'} (the integration is {status})",
            )
            self.canaries.extend(harness.canaries)

    def webhooks(self, examples: list[Cassette]) -> None:
        if not self.definition.webhooks:
            # Nothing to verify: reported as skipped (with the definition's declared reason, if it gives one), so
            # every check still shows in the report.
            for check in ("webhook.verifies", "webhook.refuses_tampered"):
                if not self.skipped(check):
                    self.report.results.append(
                        CheckResult(check, self.definition.id, True, skipped="the definition declares no webhook")
                    )
            return
        for webhook in self.definition.webhooks:
            subject = webhook.name if hasattr(webhook, "name") else webhook.__name__
            if self.skipped("webhook.verifies") and self.skipped("webhook.refuses_tampered"):
                return
            cassette = next((c for c in examples if c.metadata.get("webhook") in (subject, webhook.__name__)), None)
            verifier = webhook.verifier
            if cassette is None or not cassette.interactions or not can_sign(verifier):
                why = (
                    "no example delivery recorded"
                    if cassette is None or not cassette.interactions
                    else (f"no signer for {type(verifier).__name__} (give it a sign() method)")
                )
                for check in ("webhook.verifies", "webhook.refuses_tampered"):
                    if check not in self.skips:
                        self.result(check, subject, False, why)
                continue
            self._verify_examples(subject, verifier, cassette)

    def _verify_examples(self, subject: str, verifier: Any, cassette: Cassette) -> None:
        secret, other = verifier.new_secret(), verifier.new_secret()
        now = int(time.time())
        accepted, refused, problems = 0, 0, []
        # Schemes that do not sign the body (a bearer token, a shared header, Graph's clientState in the body).
        unsigned_body = isinstance(verifier, BearerToken | SharedSecretHeader) or not getattr(
            verifier, "authenticates_body", True
        )
        for item in cassette.interactions:
            base = {k: v for k, v in lower_headers(item.request.headers).items()}
            body, headers = signed_delivery(verifier, item.request.content, secret, now)
            signed = {**base, **headers}
            try:
                verify(verifier, body, signed, secret, now=now)
                accepted += 1
            except (InvalidSignature, StaleDelivery) as exc:
                problems.append(f"a signed example was refused: {exc.message}")
            other_body, other_headers = signed_delivery(verifier, item.request.content, other, now)
            tampered = [(other_body, {**base, **other_headers})]
            if not unsigned_body:
                tampered.append((body + b" ", signed))
            for tampered_body, headers in tampered:
                try:
                    verify(verifier, tampered_body, headers, secret, now=now)
                    problems.append("a tampered delivery was accepted")
                except (InvalidSignature, StaleDelivery):
                    refused += 1
        if "webhook.verifies" not in self.skips:
            bad = [p for p in problems if "refused" in p]
            self.result("webhook.verifies", subject, not bad, bad[0] if bad else f"{accepted} example(s) accepted")
        if "webhook.refuses_tampered" not in self.skips:
            bad = [p for p in problems if "accepted" in p]
            self.result("webhook.refuses_tampered", subject, not bad, bad[0] if bad else f"{refused} refused")

    def secrets(self, lines: list[str]) -> None:
        if self.skipped("secrets.not_logged"):
            return
        canaries = sorted(set(self.canaries))
        where: list[str] = []
        for line in lines:
            if any(c in line for c in canaries):
                where.append(f"a log record of {line.split(':', 1)[0]}")
        for tap in self.taps:
            for sent in tap.sent:
                if any(c in sent.url for c in canaries):
                    where.append(f"the URL of {sent.method} {sent.url.split('?', 1)[0]}")
        for harness in self.harnesses:
            with harness.runtime.db.session() as session:
                for message in session.exec(select(Run.error_message)).all():
                    if any(c in (message or "") for c in canaries):
                        where.append("a run's error message")
        unique = list(dict.fromkeys(where))
        self.result(
            "secrets.not_logged",
            self.definition.id,
            not unique,
            f"a credential value appeared in {unique[0]}"
            + (f" (and {len(unique) - 1} more)" if len(unique) > 1 else "")
            if unique
            else f"{len(canaries)} canary value(s) kept out of {len(lines)} log record(s)",
        )

    def scrubbed(self, found: list[tuple[Path, Cassette]]) -> None:
        if self.skipped("secrets.cassette_scrubbed"):
            return
        for path, cassette in found:
            again = scrub_interactions(cassette.interactions, [])
            changed = next(
                (i for i, (a, b) in enumerate(zip(cassette.interactions, again, strict=True)) if a != b), None
            )
            self.result(
                "secrets.cassette_scrubbed",
                path.name,
                changed is None,
                "" if changed is None else f"interaction #{changed} holds a credential-shaped value",
            )


async def arun_suite(
    definition: Definition, cassettes: str | Path, *, workdir: str | Path | None = None
) -> SuiteReport:
    """Run the standard suite for ``definition`` against the cassettes in the folder ``cassettes``."""
    if workdir is not None:
        return await _Suite(definition, Path(cassettes), Path(workdir)).run()
    with tempfile.TemporaryDirectory(prefix="tether-suite-") as scratch:
        return await _Suite(definition, Path(cassettes), Path(scratch)).run()


def run_suite(definition: Definition, cassettes: str | Path, *, workdir: str | Path | None = None) -> SuiteReport:
    """:func:`arun_suite` from synchronous code (a CLI, a plain test function)."""
    return asyncio.run(arun_suite(definition, cassettes, workdir=workdir))
