"""One test per registry rule: each breaks exactly that rule of the valid sample definition."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import pytest
from pydantic import SecretStr

from engine import (
    AppInstall,
    Client,
    ClientContext,
    ClientCredentials,
    Connection,
    CredentialSlot,
    Definition,
    Emits,
    EndpointSecret,
    EventContext,
    Header,
    InvalidSignature,
    Mapping,
    NoRevocation,
    OAuth2,
    Operation,
    OperationContext,
    Payload,
    Policy,
    Revoke,
    SubscriptionContext,
    Verifier,
    Webhook,
    WebhookEvent,
)
from engine.catalog.registry import Registry
from engine.errors import DefinitionError
from support import sample_definition as s


def rule_of(definition: Definition, **registry_options: Any) -> str:
    with pytest.raises(DefinitionError) as caught:
        Registry(**registry_options).register(definition)
    error = caught.value
    assert error.definition_id == definition.id or definition.id == ""
    assert error.part and error.reason
    assert error.rule in error.message
    return error.rule


def with_connection(connection: type[Connection], **changes: Any) -> Definition:
    connections = tuple(connection if c is s.ApiKey else c for c in s.definition.connections)
    return replace(s.definition, connections=connections, **changes)


def with_operation(op: type[Operation], **changes: Any) -> Definition:
    return replace(s.definition, operations=(*s.definition.operations, op), **changes)


def test_the_sample_is_valid() -> None:
    registry = Registry()
    registry.register(s.definition)
    compiled = registry.mapping("sample", "asset", "item")
    assert compiled is not None and compiled.filter is not None and compiled.map is not None


# -- identity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad_id", ["", "Sample", "has-dash", "1st"])
def test_definition_id(bad_id: str) -> None:
    assert rule_of(replace(s.definition, id=bad_id)) == "definition_id"


def test_duplicate_definition() -> None:
    registry = Registry()
    registry.register(s.definition)
    with pytest.raises(DefinitionError) as caught:
        registry.register(s.definition)
    assert caught.value.rule == "duplicate_definition"


def test_part_type() -> None:
    class NotASlot:
        pass

    assert rule_of(replace(s.definition, slots=(*s.definition.slots, NotASlot))) == "part_type"  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["slot", "operation", "webhook", "mapping"])
def test_duplicate_id(kind: str) -> None:
    d = s.definition
    changed = {
        "slot": {"slots": (*d.slots, s.ApiToken)},
        "operation": {"operations": (*d.operations, s.HealthCheck)},
        "webhook": {"webhooks": (*d.webhooks, s.SampleHooks)},
        "mapping": {"mappings": (*d.mappings, s.ITEM_MAPPING)},
    }[kind]
    assert rule_of(replace(d, **changed)) == "duplicate_id"


def test_duplicate_operation_id_from_two_classes_of_the_same_name() -> None:
    first = type("Sync", (s.HealthCheck,), {})
    second = type("Sync", (s.HealthCheck,), {})
    assert rule_of(replace(s.definition, operations=(*s.definition.operations, first, second))) == "duplicate_id"


# -- connections and clients ---------------------------------------------------------------------------------


def test_undeclared_slot() -> None:
    class Stray(CredentialSlot):
        key: SecretStr

    class Keyed(s.ApiKey):
        slots = (Stray,)

    assert rule_of(with_connection(Keyed)) == "undeclared_slot"


def test_connection_credential() -> None:
    class NoCredential(Connection):
        clients = (s.SampleClient,)
        disconnect = NoRevocation("nothing to revoke")

    assert rule_of(with_connection(NoCredential)) == "connection_credential"


def test_auth_slot() -> None:
    class WrongAuth(s.ApiKey):
        auth = AppInstall(slot=s.OAuthGrant, install_url="https://sample.example/install")

    assert rule_of(with_connection(WrongAuth)) == "auth_slot"


def test_auth_slot_shape_for_oauth2() -> None:
    class PlainGrant(s.ApiKey):
        auth = OAuth2(slot=s.ApiToken, authorize_url="https://sample.example/a", token_url="https://sample.example/t")

    assert rule_of(with_connection(PlainGrant)) == "auth_slot"


def test_auth_slot_shape_for_client_credentials() -> None:
    class AppOnly(s.ApiKey):
        auth = ClientCredentials(slot=s.ApiToken, token_url="https://sample.example/token")

    assert rule_of(with_connection(AppOnly)) == "auth_slot"


def test_oauth_config() -> None:
    class OtherClientField(s.OAuth):
        auth = OAuth2(
            slot=s.OAuthGrant,
            authorize_url="https://sample.example/a",
            token_url="https://sample.example/t",
            revoke_url="https://sample.example/r",
            client_id="app_client_id",
        )

    connections = tuple(OtherClientField if c is s.OAuth else c for c in s.definition.connections)
    assert rule_of(replace(s.definition, connections=connections)) == "oauth_config"


def test_disconnect_declared() -> None:
    class NoDisconnect(Connection):
        credential = s.ApiToken
        clients = (s.SampleClient,)

    assert rule_of(with_connection(NoDisconnect)) == "disconnect_declared"


def test_disconnect_reason_must_not_be_empty() -> None:
    class Silent(s.ApiKey):
        disconnect = NoRevocation("  ")

    assert rule_of(with_connection(Silent)) == "disconnect_declared"


def test_disconnect_slot() -> None:
    class RevokesOther(s.ApiKey):
        disconnect = Revoke(s.OAuthGrant)

        async def revoke(self, ctx: Any) -> None:
            return None

    assert rule_of(with_connection(RevokesOther)) == "disconnect_slot"


def test_revoke_implemented() -> None:
    class RevokeWithoutTeardown(s.ApiKey):
        disconnect = Revoke(s.ApiToken)

    assert rule_of(with_connection(RevokeWithoutTeardown)) == "revoke_implemented"


def test_revoke_is_implemented_by_an_override() -> None:
    class RevokeByHand(s.ApiKey):
        disconnect = Revoke(s.ApiToken)

        async def revoke(self, ctx: Any) -> None:
            return None

    Registry().register(with_connection(RevokeByHand))


def test_undeclared_client() -> None:
    class OtherClient(Client):
        slots = (s.ApiToken,)

        def build(self, ctx: ClientContext) -> Any:
            return None

    class UsesOther(s.ApiKey):
        clients = (s.SampleClient, OtherClient)

    assert rule_of(with_connection(UsesOther)) == "undeclared_client"


def test_client_shape_ambiguous() -> None:
    class BothSlots(s.ApiKey):
        slots = (s.OAuthGrant,)

    assert rule_of(with_connection(BothSlots)) == "client_shape"


def test_client_shape_client_without_slots() -> None:
    class Slotless(Client):
        def build(self, ctx: ClientContext) -> Any:
            return None

    assert rule_of(replace(s.definition, clients=(*s.definition.clients, Slotless))) == "client_shape"


def test_validate_operation_must_be_declared() -> None:
    class Undeclared(s.HealthCheck):
        pass

    class ValidatesUndeclared(s.ApiKey):
        validate = Undeclared

    assert rule_of(with_connection(ValidatesUndeclared)) == "validate_operation"


def test_validate_operation_must_be_inline() -> None:
    class QueuedCheck(s.HealthCheck):
        policy = Policy.queued()

    class ValidatesQueued(s.ApiKey):
        validate = QueuedCheck

    assert rule_of(with_connection(ValidatesQueued, operations=(*s.definition.operations, QueuedCheck))) == (
        "validate_operation"
    )


def test_manual_slot_needs_fields() -> None:
    class Empty(CredentialSlot):
        pass

    assert rule_of(replace(s.definition, slots=(*s.definition.slots, Empty))) == "manual_slot"


def test_install_verified() -> None:
    class Installation(CredentialSlot):
        installation_id: int

    class TrustingInstall(Connection):
        credential = Installation
        auth = AppInstall(slot=Installation, install_url="https://sample.example/install")
        disconnect = NoRevocation("uninstall the app in the provider's settings")

    d = replace(
        s.definition,
        slots=(*s.definition.slots, Installation),
        connections=(*s.definition.connections, TrustingInstall),
    )
    assert rule_of(d) == "install_verified"


def test_empty_slot_is_fine_when_auth_produces_it() -> None:
    class Installation(CredentialSlot):
        pass

    class Install(Connection):
        credential = Installation
        auth = AppInstall(slot=Installation, install_url="https://sample.example/install")
        disconnect = NoRevocation("uninstall the app in the provider's settings")

        async def verify_install(self, ctx: Any) -> None:
            return None

    Registry().register(
        replace(
            s.definition,
            slots=(*s.definition.slots, Installation),
            connections=(*s.definition.connections, Install),
        )
    )


# -- operations ----------------------------------------------------------------------------------------------


def test_execution_path_neither() -> None:
    class Nothing(Operation):
        pass

    assert rule_of(with_operation(Nothing)) == "execution_path"


def test_execution_path_both() -> None:
    class Both(s.ItemSync):
        async def run(self, ctx: OperationContext) -> None:
            return None

    assert rule_of(with_operation(Both)) == "execution_path"


def test_execution_path_must_be_async() -> None:
    class Blocking(Operation):
        def run(self, ctx: OperationContext) -> None:  # type: ignore[override]
            return None

    assert rule_of(with_operation(Blocking)) == "execution_path"


def test_ingest_operation_declares_schemas() -> None:
    class Undeclared(Operation):
        async def ingest(self, ctx: OperationContext) -> AsyncIterator[Payload]:
            yield Payload("asset", {})

    assert rule_of(with_operation(Undeclared)) == "ingest_schemas"


def test_raw_operation_declares_no_schemas() -> None:
    class RawButEmits(s.HealthCheck):
        emits = (Emits("asset", "item"),)

    assert rule_of(with_operation(RawButEmits)) == "ingest_schemas"


def test_policy_inline_cannot_reconcile() -> None:
    class InlineReconcile(s.HealthCheck):
        policy = Policy(mode="inline", reconcile=True)

    assert rule_of(with_operation(InlineReconcile)) == "policy"


def test_policy_schedule_floor() -> None:
    class TooOften(s.ItemSync):
        policy = Policy.queued(schedule=timedelta(seconds=5))

    assert rule_of(with_operation(TooOften)) == "policy"


# -- schemas and mappings ------------------------------------------------------------------------------------


def test_known_schema_for_emits() -> None:
    class EmitsUnknown(s.ItemSync):
        emits = (Emits("spaceship", "x"),)

    assert rule_of(with_operation(EmitsUnknown)) == "known_schema"


def test_a_complete_snapshot_is_of_an_emitted_schema() -> None:
    class SnapshotsUnemitted(s.ItemSync):
        complete_snapshots = ("contact",)

    assert rule_of(with_operation(SnapshotsUnemitted)) == "snapshot_schemas"

    class SnapshotsEmitted(s.ItemSync):
        complete_snapshots = tuple(e.schema for e in s.ItemSync.emits)

    Registry().register(with_operation(SnapshotsEmitted))


def test_known_schema_for_mappings() -> None:
    class EmitsItem2(s.ItemSync):
        emits = (Emits("asset", "item2"),)

    d = with_operation(
        EmitsItem2,
        mappings=(*s.definition.mappings, Mapping("spaceship", "item2"), Mapping("asset", "item2")),
    )
    assert rule_of(d) == "known_schema"


def test_mapping_coverage() -> None:
    class EmitsOther(s.ItemSync):
        emits = (Emits("asset", "other"),)

    assert rule_of(with_operation(EmitsOther)) == "mapping_coverage"


def test_mapping_unused() -> None:
    assert rule_of(replace(s.definition, mappings=(*s.definition.mappings, Mapping("asset", "orphan")))) == (
        "mapping_unused"
    )


@pytest.mark.parametrize("part", ["filter", "map"])
def test_cel_compile(part: str) -> None:
    broken = replace(s.ITEM_MAPPING, **{part: "payload.(("})
    assert rule_of(replace(s.definition, mappings=(broken,))) == "cel_compile"


@pytest.mark.parametrize(
    "expression",
    [
        '{"source_identifier": payload.id, "name": payload.name, "asset_type": "item", "colour": "red"}',
        '{"source_identifier": payload.id, "name": payload.name, "asset_type": "item", "tenant_id": "x"}',
        '{"name": payload.name, "asset_type": "item"}',
        '{"source_identifier": payload.id, "asset_type": "item"}',
    ],
    ids=["unknown-field", "context-field", "missing-upsert-key", "missing-required"],
)
def test_map_fields(expression: str) -> None:
    broken = replace(s.ITEM_MAPPING, map=expression)
    assert rule_of(replace(s.definition, mappings=(broken,))) == "map_fields"


def test_map_fields_not_checked_for_non_literal_maps() -> None:
    Registry().register(replace(s.definition, mappings=(replace(s.ITEM_MAPPING, map="payload"),)))


# -- URLs ----------------------------------------------------------------------------------------------------


def _oauth_with(url: str) -> Definition:
    class PlainOAuth(s.OAuth):
        auth = OAuth2(
            slot=s.OAuthGrant,
            authorize_url=url,
            token_url="https://sample.example/token",
            revoke_url="https://sample.example/revoke",
        )

    connections = tuple(PlainOAuth if c is s.OAuth else c for c in s.definition.connections)
    return replace(s.definition, connections=connections)


def test_https_only() -> None:
    assert rule_of(_oauth_with("http://sample.example/authorize")) == "https_only"


def test_loopback_http_only_when_allowed() -> None:
    assert rule_of(_oauth_with("http://127.0.0.1:9000/authorize")) == "https_only"
    Registry(allow_loopback=True).register(_oauth_with("http://127.0.0.1:9000/authorize"))
    assert rule_of(_oauth_with("http://10.0.0.1/authorize"), allow_loopback=True) == "https_only"


# -- webhooks ------------------------------------------------------------------------------------------------


def with_webhook(webhook: type[Webhook]) -> Definition:
    return replace(s.definition, webhooks=(webhook,))


def test_webhook_verifier() -> None:
    class Unverified(Webhook):
        name = "sample.events"
        event_type = Header("X-Sample-Event")
        events = (s.ItemChanged,)

    assert rule_of(with_webhook(Unverified)) == "webhook_verifier"


def test_a_verifier_must_be_an_engine_verifier() -> None:
    """A look-alike registered before (Graph's clientState) and every delivery was refused; now start-up says so."""

    @dataclass(frozen=True, kw_only=True)
    class LookAlike:
        secret: EndpointSecret

    class Foreign(Webhook):
        name = "sample.events"
        verifier = LookAlike(secret=EndpointSecret())  # type: ignore[assignment]
        event_type = Header("X-Sample-Event")
        events = (s.ItemChanged,)

    assert rule_of(with_webhook(Foreign)) == "webhook_verifier"

    @dataclass(frozen=True, kw_only=True)
    class Custom(Verifier):
        def verify(self, body: bytes, headers: Any, secrets: Any, *, now: float) -> None:
            raise InvalidSignature("never")

    class Own(Webhook):
        name = "sample.events"
        verifier = Custom(secret=EndpointSecret())
        event_type = Header("X-Sample-Event")
        events = (s.ItemChanged,)

    Registry().register(with_webhook(Own))

    class NoSecretSource(Webhook):
        name = "sample.events"
        verifier = Custom(secret="inline-secret")  # type: ignore[arg-type]
        event_type = Header("X-Sample-Event")
        events = (s.ItemChanged,)

    assert rule_of(with_webhook(NoSecretSource)) == "webhook_verifier"


def test_webhook_event_needs_match() -> None:
    class NoMatch(WebhookEvent):
        async def handle(self, ctx: EventContext) -> AsyncIterator[Payload]:
            yield Payload("asset", {}, variant="item")

    class Hooks(s.SampleHooks):
        events = (s.ItemChanged, NoMatch)

    assert rule_of(with_webhook(Hooks)) == "webhook_events"


def test_webhook_event_needs_handler() -> None:
    class NoHandler(WebhookEvent):
        match = "item.deleted"

    class Hooks(s.SampleHooks):
        events = (s.ItemChanged, NoHandler)

    assert rule_of(with_webhook(Hooks)) == "webhook_events"


def test_webhook_event_match_unique() -> None:
    class Again(s.ItemChanged):
        pass

    class Hooks(s.SampleHooks):
        events = (s.ItemChanged, Again)

    assert rule_of(with_webhook(Hooks)) == "webhook_events"


def test_static_webhook_needs_route() -> None:
    class Static(s.SampleHooks):
        static = True

    assert rule_of(with_webhook(Static)) == "webhook_events"


def test_a_webhook_that_lists_its_subscription_keys_needs_the_subscription_hooks() -> None:
    class Listing(s.SampleHooks):
        async def subscription_keys(self, ctx: SubscriptionContext) -> tuple[str, ...]:
            return ("channel-1",)

    assert Listing.lists_keys() and Listing.subscribes() and not s.SampleHooks.subscribes()
    assert rule_of(with_webhook(Listing)) == "webhook_events"
