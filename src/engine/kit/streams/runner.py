"""The stream loop: request a page, select its records, hand them to ingest, checkpoint, decide the next page.

It runs inside an ingest operation (``engine.kit.streams.operation``, or a Python definition's own ``ingest``), so it
goes through the one execution path like any operation: the client is the definition's egress-guarded client
(each page's exchange has a total deadline, ``timeoutSeconds``), an error answer goes through ``raise_for_status``
(a 429 becomes ``rate_limited`` with its ``Retry-After``, which the executor defers by), records go to the ingest
pipeline as ``Payload``s and are mapped by the definition's CEL mapping, and the incremental value becomes
``ctx.next_cursor``, which the executor saves only when the run succeeds.

After each page's records the runner yields a ``Checkpoint``: the executor persists those records, then saves the
stream's place on the run, so the next attempt of an interrupted run (deferred by a 429, retried after a 5xx, or
recovered from a lost worker) resumes at the next page with the guards' memory intact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import quote

import httpx

from engine.authoring.operations import Checkpoint, OperationContext, Payload
from engine.errors import ProviderError, ValidationFailed
from engine.kit.egress import read_json
from engine.kit.providerkit import raise_for_status
from engine.kit.streams import paths
from engine.kit.streams.checkpoint import StreamState
from engine.kit.streams.guards import PageGuard, PaginationShort
from engine.kit.streams.paginators import PageAnswer, Position, StreamRequest, paginator_for
from engine.kit.streams.spec import StreamSpec
from engine.kit.streams.templates import MISSING, Values
from engine.settings import Settings


class StreamRunner:
    """Runs one ``StreamSpec`` for one operation context: ``async for item in runner.run(ctx): yield item``.

    ``base_url`` is joined to relative request paths; ``provider`` names the provider in error messages; ``check``
    raises for an error answer (default: ``raise_for_status`` with the kit's typed rate limit).
    """

    def __init__(
        self,
        spec: StreamSpec,
        *,
        base_url: str = "",
        provider: str = "the provider",
        check: Callable[[httpx.Response], None] | None = None,
    ) -> None:
        self.spec = spec
        self.base_url = base_url.rstrip("/")
        self.provider = provider
        self.check = check or (lambda response: raise_for_status(response, provider, typed=True))
        self.paginator = paginator_for(spec)
        self.what = f"{provider}'s stream {spec.name}"

    def max_pages(self) -> int:
        """The deployment's cap (``TETHER_STREAM_MAX_PAGES``), lowered by the stream's own ``maxPages``."""
        cap = Settings().stream_max_pages
        return min(cap, self.spec.max_pages) if self.spec.max_pages else cap

    async def run(self, ctx: OperationContext) -> AsyncIterator[Payload | Checkpoint]:
        spec = self.spec
        base = ctx.cursor
        start = base if base is not None else (spec.incremental.start if spec.incremental else None)
        first = self.first_request(
            Values(
                user_input=ctx.user_input,
                operator_config=ctx.operator_config,
                incremental=start if spec.incremental else None,
            )
        )
        # A cursor field's value never goes back: the run starts from the stored one (a token is always new).
        keeps = spec.incremental is not None and spec.incremental.cursor_field is not None
        state = StreamState.resume(ctx.checkpoint, stream=spec.name, base=base) or StreamState(
            spec.name, base, self.paginator.first(), high=base if keeps else None
        )
        guard = PageGuard(self.what, self.max_pages(), state.pages, list(state.seen), state.last_page)
        position: Position | None = state.position
        while position is not None:
            request = self.paginator.apply(position, first)
            guard.before(request, self.paginator.key(position))
            answer = await self.fetch(ctx.client, request)
            guard.after(answer.records)
            for record in answer.records:
                yield Payload(spec.schema_name, record, variant=spec.variant)
            state.fetched += len(answer.records)
            state.high = self.incremental_value(state.high, answer)
            position = self.following(position, answer, state.fetched)
            if position is not None:
                state.position, state.pages, state.seen, state.last_page = (
                    position,
                    guard.pages,
                    guard.seen,
                    guard.last_page,
                )
                yield Checkpoint(state.dump())
        ctx.next_cursor = self.next_cursor(state.high)

    # -- one page ------------------------------------------------------------------------------------------

    def first_request(self, values: Values) -> StreamRequest:
        """The first page's request with its placeholders filled; a value missing this run leaves its field out."""
        request = self.spec.request
        try:
            path = values.fill(request.path, quote=lambda text: quote(text, safe=""))
            if path is MISSING:
                raise ValidationFailed(f"{self.what} needs a value for its path that this integration has not set")
            params = {name: values.fill(text) for name, text in request.params.items()}
            headers = {name: values.fill(text) for name, text in request.headers.items()}
            body = values.fill_json(request.body) if request.body is not None else None
        except ValueError as exc:
            raise ValidationFailed(f"{self.what}: {exc}") from None
        url = path if path.startswith(("https://", "http://")) else f"{self.base_url}{path}"
        return StreamRequest(
            request.method,
            url,
            {name: _text(value) for name, value in params.items() if value is not MISSING},
            {name: _text(value) for name, value in headers.items() if value is not MISSING},
            body,
        )

    async def fetch(self, client: httpx.AsyncClient, request: StreamRequest) -> PageAnswer:
        kwargs: dict[str, Any] = {"timeout": self.spec.request.timeout_seconds}
        if request.params:
            kwargs["params"] = request.params
        if request.headers:
            kwargs["headers"] = request.headers
        if request.body is not None:
            kwargs["json"] = request.body
        response = await client.request(request.method, request.url, **kwargs)
        self.check(response)
        body = await read_json(response)
        records = paths.read(body, self.spec.records)
        if not isinstance(records, list):
            # A body that lost its list is not an empty page: a reconciling sync would act on "nothing there".
            where = repr(self.spec.records) if self.spec.records else "the answer itself"
            raise ProviderError(f"{self.what}: no list of records at {where}")
        return PageAnswer(response, body, records)

    def following(self, position: Position, answer: PageAnswer, fetched: int) -> Position | None:
        """The next page, or ``None`` at the end; a provider that promised more than it let us read raises."""
        stop = self.spec.stop
        has_more = paths.read(answer.body, stop.has_more_path) if stop.has_more_path else None
        if stop.has_more_path and not isinstance(has_more, bool):
            raise ProviderError(f"{self.what}: {stop.has_more_path!r} is not true or false")
        total = paths.read(answer.body, stop.total_path) if stop.total_path else None
        if stop.total_path and (not isinstance(total, int) or isinstance(total, bool) or total < 0):
            raise ProviderError(f"{self.what}: {stop.total_path!r} is not a record count")
        upcoming = self.paginator.following(position, answer)
        if has_more is False or (total is not None and fetched >= total):
            return None
        empty_end = not answer.records and stop.empty_page and has_more is not True
        if upcoming is None or empty_end:
            if has_more is True:
                raise PaginationShort(
                    f"{self.what}: the provider says it has more ({stop.has_more_path}) but gave no next "
                    f"{self.paginator.kind} after {fetched} records"
                )
            if total is not None:
                raise PaginationShort(
                    f"{self.what}: the provider counts {total} records ({stop.total_path}) but the listing ended "
                    f"after {fetched}"
                )
            return None
        return upcoming

    # -- incremental ---------------------------------------------------------------------------------------

    def incremental_value(self, high: Any, answer: PageAnswer) -> Any:
        incremental = self.spec.incremental
        if incremental is None:
            return None
        if incremental.token_path is not None:
            token = paths.read(answer.body, incremental.token_path)
            return token if token not in (None, "") else high
        for record in answer.records:
            value = paths.read(record, incremental.cursor_field)
            if value is None or isinstance(value, dict | list | bool):
                continue
            if high is None or _later(value, high):
                high = value
        return high

    def next_cursor(self, high: Any) -> Any:
        incremental = self.spec.incremental
        if incremental is None:
            return None
        if incremental.token_path is not None and high is None:
            # Succeeding without a token would start the next run over from the beginning without a word.
            raise ProviderError(f"{self.what}: the last page has no {incremental.token_path!r} to continue from")
        return high  # None (no record had the field): the stored value stays as it was


def _later(value: Any, than: Any) -> bool:
    """Numbers compare as numbers; anything else as text (ISO 8601 timestamps of one provider sort as text)."""
    numbers = (int, float)
    if isinstance(value, numbers) and isinstance(than, numbers):
        return value > than
    return str(value) > str(than)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
