"""``tether records list|show`` over a real SQLite file, against what the API answers.

The rows come from the executor's ingest pipeline (the sample definition's ``asset`` mapping). The commands run
in-process through Typer's runner (the machine is shared: a process start costs seconds), and once as a real
``python -m engine.cli`` process with this checkout's ``src`` first on the path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from engine.api import create_app
from engine.api.principal import create_api_key
from engine.authoring.operations import Payload
from engine.cli import app
from engine.runtime import Runtime
from engine.store.tables import Integration
from ingest.pipeline import IngestContext
from support import sample_definition as sample
from support.sample_runtime import start_sample_runtime

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Runtime]:
    rt = start_sample_runtime(monkeypatch, f"sqlite:///{tmp_path / 'tether.db'}", str(tmp_path), migrate=True)
    yield rt
    rt.close()


def integration(runtime: Runtime, tenant: str, owner: str, count: int) -> str:
    row = Integration(tenant_id=tenant, owner_id=owner, definition_id="sample")
    with runtime.db.session() as session:
        session.add(row)
        session.flush()
        iid = row.id
    ctx = IngestContext(tenant_id=tenant, integration_id=iid, definition_id="sample", emits=sample.ItemSync.emits)
    payloads = [
        Payload("asset", {"kind": "item", "id": f"{owner}-{i}", "name": f"{owner} item {i}"}, variant="item")
        for i in range(count)
    ]
    assert runtime.executor.pipeline().process(ctx, payloads).persisted == count
    return iid


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def records(runtime: Runtime, *args: str) -> Result:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TETHER_DATABASE_URL", runtime.db.url)
        done = CliRunner().invoke(app, ["records", *args])
    return Result(done.exit_code, done.stdout, done.stderr)


def records_process(runtime: Runtime, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TETHER_")}
    env["TETHER_DATABASE_URL"] = runtime.db.url
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests"), str(ROOT)])
    command = [sys.executable, "-m", "engine.cli", "records", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)


async def test_list_json_is_the_apis_page_and_the_table_and_show_read_the_same_rows(runtime: Runtime) -> None:
    alice = integration(runtime, "t1", "alice", 3)
    integration(runtime, "t1", "bob", 2)
    integration(runtime, "t2", "carol", 1)
    key, _ = create_api_key(runtime.db, tenant="t1", role="server")
    transport = httpx.ASGITransport(app=create_app(runtime))
    async with httpx.AsyncClient(transport=transport, base_url="http://tether.test") as client:
        answered = await client.get(
            "/v1/records/asset", params={"limit": 2}, headers={"Authorization": f"Bearer {key}"}
        )
    assert answered.status_code == 200, answered.text

    listed = records_process(runtime, "list", "asset", "--tenant", "t1", "--limit", "2", "--json")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout) == answered.json()
    rest = records(runtime, "list", "asset", "--tenant", "t1", "--cursor", answered.json()["next_cursor"], "--json")
    assert [r["source_identifier"] for r in json.loads(rest.stdout)["data"]] == ["alice-2", "bob-0", "bob-1"]

    everyone = records(runtime, "list", "asset", "--json")  # the operator's view: every tenant
    assert len(json.loads(everyone.stdout)["data"]) == 6
    only = records(runtime, "list", "asset", "--owner", "bob", "--json")
    assert {r["source_identifier"] for r in json.loads(only.stdout)["data"]} == {"bob-0", "bob-1"}

    table = records(runtime, "list", "asset", "--integration", alice, "--limit", "2")
    assert table.returncode == 0, table.stderr
    header, *lines = table.stdout.splitlines()
    assert header.split() == ["id", "integration_id", "source_identifier", "name", "asset_type", "updated_at"]
    assert len(lines) == 2 and lines[0].split()[1:3] == [alice, "alice-0"]
    assert "more: --cursor " in table.stderr

    first = json.loads(listed.stdout)["data"][0]
    shown = records(runtime, "show", "asset", str(first["id"]))
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout) == first


def test_errors_are_messages_and_a_nonzero_exit(runtime: Runtime) -> None:
    for args, message in (
        (("list", "nope"), "no ingest model has schema 'nope'"),
        (("list", "asset", "--cursor", "garbage"), "cursor is not one this API returned"),
        (("list", "asset", "--updated-since", "yesterday"), "--updated-since is not an RFC 3339 timestamp"),
        (("list", "asset", "--limit", "0"), "limit must be between 1 and 500"),
        (("show", "asset", "12345"), "no asset record 12345"),
    ):
        result = records(runtime, *args)
        assert result.returncode == 1 and message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
