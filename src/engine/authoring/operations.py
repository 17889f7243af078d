"""Operations: typed actions a definition can run against its provider.

An operation's class name is its stable ID and its topic is ``"{definition_id}.{ClassName}"``. It has a typed
config model, a client (or none), a policy, and exactly one execution path: ``run`` returns a raw result, or
``ingest`` yields provider-shaped payloads that the shared ingest path maps into internal models. An ingest
operation declares every (schema, variant) it emits in ``emits``.

Access tiers are checked before anything is queued or the provider is called: a ``write`` operation on a grant
that lacks the connection's upgrade scopes is ``upgrade_required`` (403), and a ``user`` principal may run only
the operations whose policy allows it (``Policy.user_may_run``; reads by default, writes not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from engine.authoring.config import OperatorConfig, UserInput
from engine.errors import TetherError
from engine.runs import progress

if TYPE_CHECKING:
    from engine.authoring.clients import Client


class NoConfig(BaseModel):
    """The config of an operation that takes none."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Policy:
    """How and when an operation runs.

    ``inline`` runs in the caller and returns its result; ``queued`` runs on a worker. ``reconcile`` operations
    are dispatched after the first successful connection, and ``schedule`` repeats them at that interval.
    ``user_may_run`` says whether a ``user`` principal (a signed-in person, the browser) may start it through the
    API; ``None`` means the default of its tier: reads yes, writes no (the host app's server decides when to
    change provider data for a person).
    """

    mode: Literal["inline", "queued"] = "queued"
    reconcile: bool = False
    schedule: timedelta | None = None
    time_limit: timedelta = timedelta(minutes=15)
    max_retries: int = 5
    #: ``write`` operations change provider data and need the write access tier.
    access: Literal["read", "write"] = "read"
    user_may_run: bool | None = None
    #: The connection's ``Product`` this operation needs (its scopes must be granted), or ``None``.
    product: str | None = None
    #: How long a run may go without progress (a provider answer, a payload, a checkpoint, ``ctx.progress()``)
    #: before it is stopped as ``no_progress`` (``engine.runs.progress``); ``None`` takes the deployment's
    #: ``TETHER_RUN_STALL_SECONDS``, ``timedelta(0)`` turns the watchdog off for this operation.
    stall_window: timedelta | None = None

    @property
    def users_may_run(self) -> bool:
        """Whether a ``user`` principal may start this operation (the tier's default unless set)."""
        return self.access == "read" if self.user_may_run is None else self.user_may_run

    @classmethod
    def inline(
        cls,
        *,
        access: Literal["read", "write"] = "read",
        user_may_run: bool | None = None,
        product: str | None = None,
        stall_window: timedelta | None = None,
    ) -> Policy:
        return cls(mode="inline", access=access, user_may_run=user_may_run, product=product, stall_window=stall_window)

    @classmethod
    def queued(
        cls,
        *,
        reconcile: bool = False,
        schedule: timedelta | None = None,
        time_limit: timedelta = timedelta(minutes=15),
        max_retries: int = 5,
        access: Literal["read", "write"] = "read",
        user_may_run: bool | None = None,
        product: str | None = None,
        stall_window: timedelta | None = None,
    ) -> Policy:
        return cls("queued", reconcile, schedule, time_limit, max_retries, access, user_may_run, product, stall_window)


class UpgradeRequired(TetherError):
    """A ``write`` operation on a grant without the write tier's scopes; ``upgrade_url`` starts the upgrade."""

    code = "upgrade_required"
    status = 403

    def __init__(
        self, message: str, *, upgrade_url: str, missing_scopes: tuple[str, ...], product: str | None = None
    ) -> None:
        super().__init__(message)
        self.upgrade_url = upgrade_url
        self.missing_scopes = missing_scopes
        self.product = product

    def details(self) -> dict[str, object]:
        """Fields the API adds to the error envelope (scope names are public, declared by the definition)."""
        details: dict[str, object] = {"upgrade_url": self.upgrade_url, "missing_scopes": list(self.missing_scopes)}
        if self.product:
            details["product"] = self.product
        return details


class OperationNotAllowed(TetherError):
    """The principal's role may not start this operation (``Policy.user_may_run``)."""

    code = "operation_not_allowed"
    status = 403


@dataclass(frozen=True)
class Emits:
    """One (schema, variant) an operation or webhook event hands to ingest."""

    schema: str
    variant: str = ""


#: ``Payload.action`` for a record the provider deleted: the mapping still runs (it must produce the model's upsert
#: keys, nothing else is required), and ingest removes the row with those keys, with its ``remove`` change, instead
#: of upserting it. Any other action is only information for the mapping's CEL.
REMOVE = "remove"


@dataclass(frozen=True)
class Payload:
    """A provider-shaped record on its way to ingest, wrapped with what the mapping needs to route it.

    ``remove=True`` (or ``action=REMOVE``, the same thing: either sets the other) says the provider deleted this
    record (a ``deleted`` webhook event, a deletion an incremental listing reports): the mapping runs as for an
    upsert, but only the model's upsert keys need to come out of it, and the integration's record with those keys is
    removed (with the records referencing it), its ``remove`` change written in the same transaction. A removal of a
    record Tether does not hold changes nothing. ``action`` is visible to CEL.
    """

    schema: str
    data: Any
    variant: str = ""
    resource: str = ""
    action: str = ""
    remove: bool = False

    def __post_init__(self) -> None:
        # One removal, two spellings: a definition that already passes the provider's action names it ``REMOVE``.
        if self.action == REMOVE and not self.remove:
            object.__setattr__(self, "remove", True)
        elif self.remove and not self.action:
            object.__setattr__(self, "action", REMOVE)


@dataclass(frozen=True)
class Checkpoint:
    """Yielded by an ingest operation between payloads: every payload before it is persisted, then ``state`` is
    saved on the run, so a later attempt of the same run (after a rate-limit deferral, a retry or a lost worker)
    starts from it (``OperationContext.checkpoint``) instead of from the first page. JSON-serialisable; it holds
    positions (cursors, offsets), never credentials."""

    state: Any


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
    #: The run this is (``None`` outside the executor), its attempt number (1 for the first) and its trigger
    #: (``api``, ``schedule``, ``reconcile``, ``webhook``, …).
    run_id: str | None = None
    attempt: int = 1
    trigger: str = ""
    #: The last ``Checkpoint`` state an earlier attempt of this same run saved (``None`` on a first attempt).
    checkpoint: Any = None

    def progress(self) -> None:
        """Say the run is making progress, for work the executor cannot see (a long computation between provider
        calls). Provider answers, payloads and checkpoints count already; a run silent for its policy's
        ``stall_window`` is stopped as ``no_progress`` (``engine.runs.progress``)."""
        progress.note()


class Operation:
    """Base class for operations. Override exactly one of ``run`` or ``ingest``."""

    config: ClassVar[type[BaseModel]] = NoConfig
    client: ClassVar[type[Client] | None] = None
    policy: ClassVar[Policy] = Policy()
    emits: ClassVar[tuple[Emits, ...]] = ()
    #: Schemas each successful run of this operation lists completely (every record the provider has, every
    #: page): after such a run, the integration's records of these schemas it did not see are removed, with
    #: their ``remove`` changes (``engine.runs.snapshots``). Leave out a schema a run may list only in part.
    complete_snapshots: ClassVar[tuple[str, ...]] = ()

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

    def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload | Checkpoint]:
        """Ingest path: an async generator yielding ``Payload`` objects (and ``Checkpoint``s between pages)."""
        raise NotImplementedError(f"{type(self).__name__} has no ingest path")
