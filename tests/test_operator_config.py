"""Operator config comes from TETHER_* variables; a required, explicitly enabled definition fails start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.authoring.config import env_name, load_operator_config, missing_operator_variables
from engine.catalog.registry import Registry
from engine.errors import ConfigurationError
from engine.runtime import Runtime
from engine.settings import Settings
from support import sample_definition as s


def test_variable_names() -> None:
    assert env_name("sample", s.SampleOperatorConfig, "client_id") == "TETHER_SAMPLE_CLIENT_ID"
    assert env_name("sample", s.SampleOperatorConfig, "client_secret") == "TETHER_SECRET_SAMPLE_CLIENT_SECRET"


def test_load_reads_secrets_without_exposing_them() -> None:
    env = {"TETHER_SAMPLE_CLIENT_ID": "cid", "TETHER_SECRET_SAMPLE_CLIENT_SECRET": "hunter2-secret"}
    config = load_operator_config("sample", s.SampleOperatorConfig, env)
    assert config.client_id == "cid"  # type: ignore[attr-defined]
    assert config.client_secret.get_secret_value() == "hunter2-secret"  # type: ignore[attr-defined]
    assert "hunter2-secret" not in repr(config) and "hunter2-secret" not in str(config.model_dump())


def test_missing_secret_names_the_variable() -> None:
    env = {"TETHER_SAMPLE_CLIENT_ID": "cid"}
    assert missing_operator_variables("sample", s.SampleOperatorConfig, env) == ["TETHER_SECRET_SAMPLE_CLIENT_SECRET"]
    with pytest.raises(ConfigurationError, match="TETHER_SECRET_SAMPLE_CLIENT_SECRET"):
        load_operator_config("sample", s.SampleOperatorConfig, env)


def test_required_definition_with_missing_secret_fails_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TETHER_SAMPLE_CLIENT_ID", "cid")
    monkeypatch.delenv("TETHER_SECRET_SAMPLE_CLIENT_SECRET", raising=False)
    registry = Registry()
    registry.register(s.definition)
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", enabled_definitions="sample")
    with pytest.raises(ConfigurationError) as caught:
        Runtime.start(settings, registry=registry)
    assert "TETHER_SECRET_SAMPLE_CLIENT_SECRET" in caught.value.message


def test_enabling_an_unknown_definition_fails_start_up(tmp_path: Path) -> None:
    registry = Registry()
    settings = Settings(database_url=f"sqlite:///{tmp_path / 't.db'}", enabled_definitions="nope")
    with pytest.raises(ConfigurationError, match="nope"):
        Runtime.start(settings, registry=registry)
