"""Every engine knob is a ``Settings`` field: no other engine module reads a ``TETHER_*`` variable itself.

Operator config is the exception by design (``engine.authoring.config`` reads ``TETHER_{DEFINITION}_{FIELD}`` names
that the definitions' own models declare, and ``engine.catalog.describe`` reports which are missing); the CLI only
writes ``--host``/``--port`` into the environment so every ``Settings()`` of the process agrees.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from engine.settings import Settings

ENGINE = Path(__file__).resolve().parents[1] / "src" / "engine"
#: Modules that may touch ``os.environ``, and why.
ALLOWED = {
    "settings.py": "the one reader of engine knobs",
    "authoring/config.py": "operator config, named by each definition's model",
    "catalog/describe.py": "which operator variables are missing",
    "cli.py": "writes --host/--port for the process's later Settings()",
    "observability/metrics.py": "writes prometheus-client's PROMETHEUS_MULTIPROC_DIR from TETHER_METRICS_DIR",
    "observability/span_shipping.py": "the OTel SDK's own OTEL_BSP_* and OTEL_SERVICE_NAME, read as the SDK's "
    "batch processor reads them, and the environment its exporter child inherits",
}


def environment_reads(path: Path) -> list[int]:
    lines = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv", "environb"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os" and any(
            alias.name in ("environ", "getenv") for alias in node.names
        ):
            lines.append(node.lineno)
    return lines


def test_only_settings_reads_the_engines_environment() -> None:
    found = {
        str(path.relative_to(ENGINE)): lines
        for path in sorted(ENGINE.rglob("*.py"))
        if (lines := environment_reads(path)) and str(path.relative_to(ENGINE)) not in ALLOWED
    }
    assert found == {}


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("TETHER_QUEUE", "jobs", "queue", "jobs"),
        ("TETHER_DEV_LOGIN", "off", "dev_login", False),
        ("TETHER_DATABASE_POOL_SIZE", "3", "database_pool_size", 3),
        ("TETHER_RUN_HEARTBEAT_SECONDS", "2.5", "run_heartbeat_seconds", 2.5),
        ("TETHER_DELIVERY_SWEEP_AFTER_SECONDS", "5", "delivery_sweep_after_seconds", 5.0),
        ("TETHER_CEL_COST_LIMIT", "10", "cel_cost_limit", 10),
        ("TETHER_ALLOW_LOOPBACK_PROVIDERS", "1", "allow_loopback_providers", True),
        ("TETHER_SANDBOX", "1", "sandbox", True),
        ("TETHER_MODEL_MODULES", "acme.models, acme.more", "model_modules", "acme.models, acme.more"),
        ("TETHER_SANDBOX_TOKEN_SECONDS", "30", "sandbox_token_seconds", 30),
        ("TETHER_EVENT_RETRY_SCHEDULE", "1,2", "event_retry_schedule", "1,2"),
        ("TETHER_EVENT_RETRY_WINDOW_SECONDS", "60", "event_retry_window_seconds", 60.0),
        ("TETHER_EVENT_DELIVERY_TIMEOUT_SECONDS", "2", "event_delivery_timeout_seconds", 2.0),
        ("TETHER_EVENT_LEASE_SECONDS", "5", "event_lease_seconds", 5.0),
        ("TETHER_EVENT_SWEEP_SECONDS", "0.5", "event_sweep_seconds", 0.5),
        ("TETHER_EVENT_REQUEUE_AFTER_SECONDS", "3", "event_requeue_after_seconds", 3.0),
        ("TETHER_EVENT_SECRET_OVERLAP_SECONDS", "10", "event_secret_overlap_seconds", 10.0),
    ],
)
def test_the_knobs_formerly_read_elsewhere_are_settings(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str, expected: object
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(Settings(), field) == expected
    monkeypatch.delenv(variable)
    assert getattr(Settings(), field) != expected


@pytest.mark.parametrize("variable", ["TETHER_DEV_LOGIN", "TETHER_DATABASE_POOL_SIZE", "TETHER_QUEUE", "TETHER_PORT"])
def test_an_empty_variable_means_the_default(monkeypatch: pytest.MonkeyPatch, variable: str) -> None:
    monkeypatch.setenv(variable, "")
    field = variable.removeprefix("TETHER_").lower()
    assert getattr(Settings(), field) == Settings.model_fields[field].default
