"""Without a broker, deliveries take the path they take with one: one message of row IDs per committed batch for the
delivery actor, on Dramatiq's in-memory ``StubBroker``, processed by the in-process worker (issue 17: one embedded
execution mode)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from dramatiq import Message
from sqlmodel import select

from engine.queue import worker as worker_module
from engine.store.tables import DeliveryStatus, WebhookDelivery
from support import webhook_definition as hooks
from support.embedded import EmbeddedWorker
from support.webhook_kit import Setup, event_body, sign


async def test_without_a_broker_batches_go_to_the_delivery_actor_in_memory(
    sqlite_setup: Setup, app_for: Any, embedded: EmbeddedWorker
) -> None:
    runtime = sqlite_setup.runtime
    assert not runtime.settings.broker_url
    worker_module.reset()
    app, client = app_for(runtime)
    ids = [f"mem-{i}" for i in range(5)]
    bodies = [event_body("github", "item.changed", d) for d in ids]
    responses = await asyncio.gather(
        *(
            client.post(
                f"/v1/webhooks/{sqlite_setup.token('github')}",
                content=body,
                headers=sign("github", body, sqlite_setup.secret("github"), delivery=d),
            )
            for d, body in zip(ids, bodies, strict=True)
        )
    )
    assert [r.status_code for r in responses] == [202] * 5
    assert app.state.webhook_sender.wait_idle()
    with runtime.db.session() as session:
        rows = list(session.exec(select(WebhookDelivery)))
    assert {r.status for r in rows} == {DeliveryStatus.received} and hooks.SEEN == []  # acknowledged before processing

    broker = worker_module.get_broker(runtime.settings)
    assert type(broker).__name__ == "StubBroker"
    queue = broker.queues[worker_module.queue_name(runtime.settings)]  # type: ignore[attr-defined]
    messages = [Message.decode(raw) for raw in list(queue.queue)]
    assert len(messages) == app.state.webhook_sender.sent <= app.state.webhook_recorder.batches
    assert {m.actor_name for m in messages} == {worker_module.DELIVERIES_ACTOR_NAME}
    assert sorted(row_id for m in messages for row_id in m.args[0]) == sorted(r.id for r in rows)
    assert "item.changed" not in json.dumps([m.asdict() for m in messages])  # row IDs only

    embedded.start(app, keep_queued=True)  # the in-process worker takes what is queued
    await embedded.drain()
    with runtime.db.session() as session:
        done = list(session.exec(select(WebhookDelivery)))
    assert {(r.status, r.attempts) for r in done} == {(DeliveryStatus.processed, 1)}
    assert sorted(d for _, d in hooks.SEEN) == sorted(ids)
