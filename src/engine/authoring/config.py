"""Operator config and user input: the two non-credential inputs of a definition.

``OperatorConfig`` is process-wide (an OAuth client ID, an app's private key) and comes from the environment when
the engine starts: a field ``app_id`` of definition ``github_app`` is read from ``TETHER_GITHUB_APP_APP_ID``, and a
secret field (``SecretStr``) ``private_key`` from ``TETHER_SECRET_GITHUB_APP_PRIVATE_KEY``.

``UserInput`` is per integration and non-secret (an org login, a region, which projects to sync); it is validated
against its schema and stored on the integration.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretBytes, SecretStr, ValidationError

from engine.errors import ConfigurationError
from engine.observability.logs import note_process_secrets, slot_secrets


class OperatorConfig(BaseModel):
    """Process-wide configuration and secrets of one definition, read from the environment."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class UserInput(BaseModel):
    """Per-integration, non-secret configuration collected from the user."""

    model_config = ConfigDict(extra="forbid")


def is_secret_field(model: type[BaseModel], name: str) -> bool:
    annotation = model.model_fields[name].annotation
    return annotation in (SecretStr, SecretBytes, SecretStr | None, SecretBytes | None)


def env_name(definition_id: str, model: type[BaseModel], field: str) -> str:
    """The environment variable that holds one operator config field."""
    stem = f"{definition_id}_{field}".upper()
    return f"TETHER_SECRET_{stem}" if is_secret_field(model, field) else f"TETHER_{stem}"


def missing_operator_variables(
    definition_id: str, model: type[OperatorConfig], environ: Mapping[str, str] | None = None
) -> list[str]:
    """Names of the variables a required field needs and the environment lacks."""
    env = os.environ if environ is None else environ
    return [
        env_name(definition_id, model, name)
        for name, field in model.model_fields.items()
        if field.is_required() and not env.get(env_name(definition_id, model, name))
    ]


def load_operator_config(
    definition_id: str, model: type[OperatorConfig], environ: Mapping[str, str] | None = None
) -> OperatorConfig:
    """Build a definition's operator config from the environment.

    Raises ``ConfigurationError`` naming every missing variable, or the variable whose value is invalid; the
    message never contains a value.
    """
    env = os.environ if environ is None else environ
    missing = missing_operator_variables(definition_id, model, env)
    if missing:
        raise ConfigurationError(f"{definition_id}: missing required environment variable(s): {', '.join(missing)}")
    values: dict[str, Any] = {}
    for name in model.model_fields:
        raw = env.get(env_name(definition_id, model, name))
        if raw:
            values[name] = raw
    try:
        config = model.model_validate(values)
    except ValidationError as exc:
        names = sorted({env_name(definition_id, model, str(err["loc"][0])) for err in exc.errors() if err["loc"]})
        raise ConfigurationError(f"{definition_id}: invalid value in {', '.join(names)}") from None
    note_process_secrets(slot_secrets(config))  # scrubbed from every log line (``engine.observability.logs``)
    return config
