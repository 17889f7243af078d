"""The pagination faults peers' users report, each ending the run with an error that names it, never a loop.

* A repeated cursor (or next link, offset, page number): the request about to be sent was already sent in this run
  → ``pagination_loop``.
* An identical page: the records equal the previous page's (by SHA-256 of their canonical JSON), whatever the
  cursor says → ``pagination_loop``.
* A short listing: the provider promised more (a has-more flag, a total count) and then gave no way to get it (no
  cursor, an empty or short page) → ``pagination_short``. Taking it for the end would let a reconciling sync act on
  half a listing.
* The page cap (``TETHER_STREAM_MAX_PAGES``, lowered per stream by ``maxPages``) → ``pagination_limit``.

The guard's memory is part of the run's checkpoint, so an attempt that resumes still sees the cursors sent before.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine.kit.providerkit import PaginationLimit, PaginationLoop, PaginationShort
from engine.kit.streams.paginators.base import StreamRequest

__all__ = ["PageGuard", "PaginationShort", "digest"]


def digest(value: Any) -> str:
    """A short, stable fingerprint of JSON data (sorted keys)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:32]


@dataclass
class PageGuard:
    """What the guards remember across the pages of one run (and its resumed attempts)."""

    what: str
    max_pages: int
    pages: int = 0
    seen: list[str] = field(default_factory=list)
    last_page: str | None = None

    def before(self, request: StreamRequest, named: str | None) -> None:
        """Called before a page is fetched: the cap and the repeated-cursor guard."""
        if self.pages >= self.max_pages:
            raise PaginationLimit(f"{self.what} stopped after {self.max_pages} pages (the page cap)")
        # The URL as it will be sent, its query sorted: a next link back to the first request (which had its query
        # in ``params``) is the same request.
        url = httpx.URL(request.url).copy_merge_params(request.params)
        query = sorted(url.params.multi_items())
        key = digest([request.method, str(url.copy_with(query=None)), query, request.body])
        if key in self.seen:
            raise PaginationLoop(
                f"{self.what} repeated a cursor: page {self.pages + 1} would ask for {named or 'the first page'} again"
            )
        self.seen.append(key)

    def after(self, records: list[Any]) -> None:
        """Called with each page's records: the identical-page guard."""
        self.pages += 1
        if not records:
            return
        page = digest(records)
        if page == self.last_page:
            raise PaginationLoop(f"{self.what} sent an identical page: page {self.pages} repeats page {self.pages - 1}")
        self.last_page = page
