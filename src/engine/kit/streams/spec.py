"""The declaration of a stream: one paged REST listing, made incremental and mapped into an internal model.

Modelled on dlt's ``rest_api`` resources and Airbyte's low-code streams: the author fills declarations, the kit runs
the loop (``engine.kit.streams.runner``). A data definition carries these in its file (``[[streams]]``); a Python
definition builds them in code and hands them to ``stream_operation``. Keys are camelCase in files (the seed's
style); Python may use the snake_case field names.

Values of a request (path, params, headers, body strings) may hold placeholders, filled per run
(``engine.kit.streams.templates``): ``{input.NAME}`` (the connection's user input), ``{config.NAME}`` (the
definition's operator config; secret fields are refused) and ``{incremental}`` (the stored incremental value, or the
declared start). A param, header or body field whose placeholder has no value this run is left out of the request,
so ``since = "{incremental}"`` is sent only once there is something to send.

Paths (``records``, ``cursorPath``, ``hasMorePath``, ``totalPath``, ``cursorField``, ``tokenPath``) are dotted JSON
paths (``response_metadata.next_cursor``, a leading ``$.`` allowed, list items by index ``items.0.id``); a key that
holds a dot (``@odata.nextLink``) is read as it stands.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from engine.kit.streams.templates import ROOTS, placeholders

#: Operation IDs are class names (stable IDs): a stream's name is one.
_OPERATION_NAME = re.compile(r"^[A-Z][A-Za-z0-9]{0,99}$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-\[\]]{0,199}$")
_PATH = re.compile(r"^(\$\.)?[A-Za-z0-9_@$\-]+(\.[A-Za-z0-9_@$\-]+)*$")


def _check_path(value: str | None) -> str | None:
    if value is not None and value != "" and not _PATH.match(value):
        raise ValueError("a dotted JSON path (letters, digits, _ @ $ -; a leading $. allowed)")
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError("a request parameter or field name (letters, digits, _ . - [ ])")
    return value


#: A dotted JSON path, checked when the file is read.
JsonPath = Annotated[str, AfterValidator(_check_path)]
#: A request parameter or JSON body field name.
ParamName = Annotated[str, AfterValidator(_check_name)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RequestSpec(_Part):
    """The request of a stream's first page; pagination adds its own parameters to it."""

    path: str = Field(
        description="The URL path, joined to the definition's apiUrl (``/v1/search``); or a full https URL. "
        "Placeholders in it are percent-encoded, so a value can never add a path segment."
    )
    method: Literal["GET", "POST"] = Field(default="GET", description="The HTTP method (POST for search APIs).")
    params: dict[str, str] = Field(default={}, description="Query parameters; values may hold placeholders.")
    headers: dict[str, str] = Field(
        default={}, description="Request headers beyond the client's own (which carry the credential)."
    )
    body: dict[str, Any] | None = Field(
        default=None,
        description="A JSON body (POST). String values may hold placeholders; a value that is exactly one "
        "placeholder keeps the value's own JSON type.",
    )
    timeout_seconds: float = Field(
        default=20.0,
        gt=0,
        le=120,
        alias="timeoutSeconds",
        description="The total deadline of each page's exchange (connect, send, read), enforced by the egress guard.",
    )

    @field_validator("path")
    @classmethod
    def _relative_or_https(cls, value: str) -> str:
        if not (value.startswith("/") or value.startswith("https://") or value.startswith("http://")):
            raise ValueError("a path starting with / or a full URL")
        return value

    @field_validator("params", "headers")
    @classmethod
    def _names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            _check_name(name)
        return value


class CursorPagination(_Part):
    """A next cursor (or token) read from each answer and sent back with the next request (Notion's
    ``next_cursor`` → ``start_cursor``, Slack's ``response_metadata.next_cursor`` → ``cursor``). An empty or
    absent cursor ends the stream."""

    kind: Literal["cursor"] = Field(description="Cursor (next-token) pagination.")
    cursor_path: JsonPath = Field(alias="cursorPath", description="Where the answer holds the next cursor.")
    param: ParamName = Field(description="The request parameter (or body field) that carries the cursor back.")
    location: Literal["query", "body"] = Field(
        default="query", alias="in", description="Whether the cursor goes in the query string or the JSON body."
    )
    page_size_param: ParamName | None = Field(
        default=None, alias="pageSizeParam", description="The parameter (same place) that sets the page size."
    )
    page_size: int | None = Field(default=None, ge=1, le=10_000, alias="pageSize", description="The page size.")


class LinkPagination(_Part):
    """The next page's URL in the ``Link`` header (RFC 8288 ``rel="next"``: GitHub, Okta). No next link ends the
    stream; a next link to another origin is refused (it would receive the credential)."""

    kind: Literal["link"] = Field(description="Link header pagination.")
    page_size_param: ParamName | None = Field(
        default=None,
        alias="pageSizeParam",
        description="The query parameter of the first request setting the page size.",
    )
    page_size: int | None = Field(default=None, ge=1, le=10_000, alias="pageSize", description="The page size.")


class OffsetPagination(_Part):
    """``offset``/``limit`` pages: the next offset is the last one plus the records received. A page shorter than
    ``limit`` ends the stream unless ``stop`` names a has-more flag or a total, which then decide."""

    kind: Literal["offset"] = Field(description="Offset/limit pagination.")
    offset_param: ParamName = Field(
        default="offset", alias="offsetParam", description="The parameter carrying the offset."
    )
    limit_param: ParamName = Field(default="limit", alias="limitParam", description="The parameter carrying the limit.")
    limit: int = Field(default=100, ge=1, le=10_000, description="Records asked for per page.")
    start: int = Field(default=0, ge=0, description="The offset of the first page.")
    location: Literal["query", "body"] = Field(
        default="query", alias="in", description="Whether offset and limit go in the query string or the JSON body."
    )


class PageNumberPagination(_Part):
    """Numbered pages (``page=1, 2, …``). A page shorter than ``size`` (or an empty one) ends the stream unless
    ``stop`` names a has-more flag or a total, which then decide."""

    kind: Literal["page"] = Field(description="Page-number pagination.")
    page_param: ParamName = Field(
        default="page", alias="pageParam", description="The parameter carrying the page number."
    )
    start_page: int = Field(default=1, ge=0, alias="startPage", description="The number of the first page.")
    size_param: ParamName | None = Field(
        default=None, alias="sizeParam", description="The parameter carrying the page size (none: the provider's)."
    )
    size: int | None = Field(default=None, ge=1, le=10_000, description="Records asked for per page.")
    location: Literal["query", "body"] = Field(
        default="query", alias="in", description="Whether the page number goes in the query string or the JSON body."
    )


Pagination = Annotated[
    CursorPagination | LinkPagination | OffsetPagination | PageNumberPagination, Field(discriminator="kind")
]


class StopSpec(_Part):
    """What the provider says about the end, checked on every page besides the paginator's own end signal.

    A provider that promised more (``hasMorePath`` true, or ``totalPath`` above what arrived) and then gives no
    way to get it fails the run with ``pagination_short``: a short listing is never taken for the whole one."""

    has_more_path: JsonPath | None = Field(
        default=None,
        alias="hasMorePath",
        description="A boolean in the answer: false ends the stream; true with no next page is an error.",
    )
    total_path: JsonPath | None = Field(
        default=None,
        alias="totalPath",
        description="The total record count in the answer: reaching it ends the stream; ending below it is an error.",
    )
    empty_page: bool = Field(
        default=True,
        alias="emptyPage",
        description="Whether a page with no records ends the stream (unless the provider says it has more).",
    )


class IncrementalSpec(_Part):
    """Incremental sync: what the next run starts from, saved only when a run succeeds.

    Exactly one of ``cursorField`` (the highest value of a record field, e.g. ``updated_at``) and ``tokenPath`` (a
    provider token on the last page, e.g. a sync token or delta link). The value reaches the request through the
    ``{incremental}`` placeholder."""

    cursor_field: JsonPath | None = Field(
        default=None,
        alias="cursorField",
        description="A record field whose highest value (compared as numbers, else as text: ISO 8601) is kept.",
    )
    token_path: JsonPath | None = Field(
        default=None, alias="tokenPath", description="Where the last page holds the token the next run sends."
    )
    start: str | None = Field(default=None, description="The value the first run sends (none: nothing is sent).")

    @model_validator(mode="after")
    def _exactly_one(self) -> IncrementalSpec:
        if (self.cursor_field is None) == (self.token_path is None):
            raise ValueError("incremental declares exactly one of cursorField and tokenPath")
        return self


class StreamSpec(_Part):
    """One stream: an ingest operation of the definition, named ``name``, listing records into ``schema``."""

    name: str = Field(
        description="The operation's ID, a CamelCase class name (``PageSync``); renaming it is a migration."
    )
    description: str = Field(default="", description="What the operation lists, shown in the catalog.")
    request: RequestSpec = Field(description="The first page's request.")
    records: JsonPath = Field(
        default="", description="Where each answer holds its list of records (empty: the answer is the list)."
    )
    pagination: Pagination | None = Field(default=None, description="How to reach the next page (none: one request).")
    stop: StopSpec = Field(default_factory=StopSpec, description="The provider's own end signals, checked per page.")
    incremental: IncrementalSpec | None = Field(default=None, description="Incremental sync (none: a full listing).")
    schema_name: str = Field(alias="schema", description="The internal model the records land in (``file``).")
    variant: str = Field(default="", description="The payload variant, selecting the mapping.")
    map: str = Field(description="The CEL mapping from a record (``payload``) to the model's fields.")
    filter: str = Field(default="", description="A CEL boolean: records for which it is false are filtered.")
    reconcile: bool = Field(default=True, description="Whether the stream runs after the first successful connection.")
    schedule_minutes: int | None = Field(
        default=None, ge=1, alias="scheduleMinutes", description="Run again every this many minutes (none: never)."
    )
    max_pages: int | None = Field(
        default=None,
        ge=1,
        alias="maxPages",
        description="A page cap below the deployment's (TETHER_STREAM_MAX_PAGES), which always applies.",
    )

    @field_validator("name")
    @classmethod
    def _operation_name(cls, value: str) -> str:
        if not _OPERATION_NAME.match(value):
            raise ValueError("a stream's name is a CamelCase operation ID (PageSync)")
        return value

    @model_validator(mode="after")
    def _placeholders_are_known(self) -> StreamSpec:
        request = self.request
        texts = [request.path, *request.params.values(), *request.headers.values(), *_strings(request.body)]
        for text in texts:
            for root, name in placeholders(text):
                if root not in ROOTS:
                    raise ValueError(
                        f"unknown placeholder {{{root}}}: use {{input.NAME}}, {{config.NAME}} or {{incremental}}"
                    )
                if root == "incremental" and self.incremental is None:
                    raise ValueError("{incremental} needs an [incremental] declaration")
                if root != "incremental" and not name:
                    raise ValueError(f"{{{root}.NAME}} names a field")
        if "{incremental}" in request.path:
            raise ValueError("{incremental} goes in params or the body, not the path")
        return self


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []
