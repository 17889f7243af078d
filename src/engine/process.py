"""Process set-up shared by the long-running commands (``tether serve``, ``tether worker``): garbage collection and
logging (no credential in an access log line, exceptions by type only)."""

from __future__ import annotations

import copy
import gc
import logging
from typing import Any
from urllib.parse import unquote_plus

#: Allocations between young collections, and the collections of each generation before the next one is collected
#: (CPython's defaults: 700, 10, 10). Measured on the webhook bench (one uvicorn process, 50 connections): p99
#: 40 → 26 ms and 2,900 → 3,300 deliveries/s; a young collection of 20,000 objects still takes about a millisecond.
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    """Freeze the start-up heap and collect less often; call once start-up is done.

    Start-up allocates ~200k objects that live as long as the process (definitions, the registry, compiled CEL,
    SQLAlchemy and pydantic metadata). Without ``gc.freeze()`` every full collection walks them again: a busy webhook
    server spent 15-25% of its core in collections of 150-300 ms each, which is where its p99 latency came from.
    Objects created later are collected as usual; nothing frozen is ever freed, which is what start-up objects are
    for anyway. Request handling allocates many short-lived containers, so young collections at CPython's default
    threshold (every 700 allocations) run thousands of times a second; ``GC_THRESHOLDS`` spaces them out.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


# -- logs keep no credentials-in-transit ------------------------------------------------------------------------

#: Query parameters whose values are credentials in transit: the OAuth authorization ``code`` and ``state`` on the
#: callback, and the browser-binding ``session`` of ``/v1/oauth/start``. The access log records every request line.
REDACTED_QUERY_PARAMETERS = frozenset({"code", "state", "session"})
REDACTED = "[redacted]"


def redact_query(target: str) -> str:
    """``target`` (a request path with its query string) with the values of ``REDACTED_QUERY_PARAMETERS`` replaced.

    Names are compared after percent-decoding and case-folding, so ``?%63ode=`` or ``?Code=`` hide nothing."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    parts = []
    for part in query.split("&"):
        name, eq, _value = part.partition("=")
        hidden = eq and unquote_plus(name).strip().lower() in REDACTED_QUERY_PARAMETERS
        parts.append(f"{name}={REDACTED}" if hidden else part)
    return f"{path}?{'&'.join(parts)}"


class RedactQuery(logging.Filter):
    """On uvicorn's access log, whose records carry ``(client, method, path?query, http version, status)``."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_query(args[2]), *args[3:])
        return True


class TypeOnly(logging.Filter):
    """Exceptions are logged by type only (``docs/errors.md``): a traceback's text may hold anything, such as SQL
    bound parameters or a provider's answer. Applied to every handler of the long-running commands, so it covers
    what escapes our own handlers too (uvicorn's ``Exception in ASGI application``, dramatiq's unhandled actor
    errors, asyncio's unretrieved task exceptions)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info:
            kind = record.exc_info[0]
            record.msg = f"{record.getMessage()} [{kind.__name__ if kind is not None else 'exception'}]"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        record.stack_info = None
        return True


def uvicorn_log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging config with ``RedactQuery`` on the access log and ``TypeOnly`` everywhere; the root logger
    (``tether.*``, dramatiq, asyncio) goes to uvicorn's default handler at ``level`` (``TETHER_LOG_LEVEL``)."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {
        "redact_query": {"()": "engine.process.RedactQuery"},
        "type_only": {"()": "engine.process.TypeOnly"},
    }
    config["handlers"]["default"]["filters"] = ["type_only"]
    config["handlers"]["access"]["filters"] = ["redact_query", "type_only"]
    config["root"] = {"handlers": ["default"], "level": level.upper()}
    return config


def configure_worker_logging(level: int = logging.INFO) -> None:
    """``logging.basicConfig`` for ``tether worker`` and ``tether scheduler``, with ``TypeOnly`` on its handler."""
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, TypeOnly) for f in handler.filters):
            handler.addFilter(TypeOnly())
