"""A help desk whose sync lists the tickets its config names, mapped into the host's own ``ticket`` model
(``support.host_models``): the worked example of docs/authoring.md, "Models of your own"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel

from engine import Definition, Emits, Mapping, Operation, OperationContext, Payload, Policy

EMITS = (Emits("ticket", "issue"),)


class TicketConfig(BaseModel):
    #: The help desk's API objects, as it would return them.
    tickets: list[dict[str, Any]] = []


class TicketSync(Operation):
    """List every ticket of the config."""

    config = TicketConfig
    policy = Policy.inline()
    emits = EMITS

    async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
        config: TicketConfig = ctx.config  # type: ignore[assignment]
        for ticket in config.tickets:
            yield Payload("ticket", ticket, variant="issue")


definition = Definition(
    id="helpdesk_test",
    name="Help desk (test)",
    description="Tickets from the run's config, into a host app's own model.",
    operations=(TicketSync,),
    mappings=(
        Mapping(
            schema="ticket",
            variant="issue",
            map=(
                '{"external_id": payload.id, "title": payload.subject, "status": payload.state,'
                ' "priority": payload.priority, "requester_email": payload.requester.email,'
                ' "opened_at": payload.created}'
            ),
        ),
    ),
)
