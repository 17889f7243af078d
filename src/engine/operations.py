"""Operations: typed actions a definition can run against its provider.

An operation's class name is its stable ID and its topic is ``"{definition_id}.{ClassName}"``. It has a typed
config model, a client (or none), a policy, and exactly one execution path: ``run`` returns a raw result, or
``ingest`` yields provider-shaped payloads that the shared ingest path maps into internal models. An ingest
operation declares every (schema, variant) it emits in ``emits``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from engine.config import OperatorConfig, UserInput

if TYPE_CHECKING:
    from engine.clients import Client


class NoConfig(BaseModel):
    """The config of an operation that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Policy:
    """How and when an operation runs.

    ``inline`` runs in the caller and returns its result; ``queued`` runs on a worker. ``reconcile`` operations
    are dispatched after the first successful connection, and ``schedule`` repeats them at that interval.
    """

    mode: Literal["inline", "queued"] = "queued"
    reconcile: bool = False
    schedule: timedelta | None = None
    time_limit: timedelta = timedelta(minutes=15)
    max_retries: int = 5
    #: ``write`` operations change provider data and need the write access tier.
    access: Literal["read", "write"] = "read"

    @classmethod
    def inline(cls, *, access: Literal["read", "write"] = "read") -> Policy:
        return cls(mode="inline", access=access)

    @classmethod
    def queued(
        cls,
        *,
        reconcile: bool = False,
        schedule: timedelta | None = None,
        time_limit: timedelta = timedelta(minutes=15),
        max_retries: int = 5,
        access: Literal["read", "write"] = "read",
    ) -> Policy:
        return cls("queued", reconcile, schedule, time_limit, max_retries, access)


@dataclass(frozen=True)
class Emits:
    """One (schema, variant) an operation or webhook event hands to ingest."""

    schema: str
    variant: str = ""


@dataclass(frozen=True)
class Payload:
    """A provider-shaped record on its way to ingest, wrapped with what the mapping needs to route it."""

    schema: str
    data: Any
    variant: str = ""
    resource: str = ""
    action: str = ""


@dataclass
class OperationContext:
    """What an operation receives when it runs."""

    integration_id: str
    tenant_id: str
    config: BaseModel
    client: Any
    operator_config: OperatorConfig | None
    user_input: UserInput | None
    #: Incremental-sync cursor from the last successful run (``None`` on the first).
    cursor: Any = None
    last_success_at: datetime | None = None
    #: Set by an ingest operation to the cursor the next run should start from; saved only if this run succeeds.
    next_cursor: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


class Operation:
    """Base class for operations. Override exactly one of ``run`` or ``ingest``."""

    config: ClassVar[type[BaseModel]] = NoConfig
    client: ClassVar[type[Client] | None] = None
    policy: ClassVar[Policy] = Policy()
    emits: ClassVar[tuple[Emits, ...]] = ()

    @classmethod
    def operation_id(cls) -> str:
        return cls.__name__

    @classmethod
    def description(cls) -> str:
        return (cls.__doc__ or "").strip().split("\n\n")[0]

    @classmethod
    def execution_paths(cls) -> list[str]:
        """Which of ``run`` and ``ingest`` this operation overrides (exactly one is valid)."""
        return [name for name in ("run", "ingest") if getattr(cls, name) is not getattr(Operation, name)]

    async def run(self, ctx: OperationContext) -> Any:
        """Raw-result path: return a JSON-serialisable result."""
        raise NotImplementedError(f"{type(self).__name__} has no raw-result path")

    def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        """Ingest path: an async generator yielding ``Payload`` objects."""
        raise NotImplementedError(f"{type(self).__name__} has no ingest path")
