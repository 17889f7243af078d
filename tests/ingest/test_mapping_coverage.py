"""Mapping coverage (``tether mapping coverage``): the payload paths a CEL mapping reads, and a report over
recorded payloads of what each mapping fills, leaves null or never writes, what it reads that never arrives, and
what arrives that nothing reads. The case it exists for: a field name of another API version."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from definitions.todoist import definition as todoist
from engine import Definition, Mapping
from engine.cli import app
from engine.devtools.celreads import dotted, reads
from engine.devtools.coverage import coverage
from engine.devtools.payloads import discover, read_paths, records_in
from engine.devtools.report import render
from support.cassette_fixtures import response_fixture
from support.published import FIXTURES

TODOIST = FIXTURES / "todoist"


def paths(text: str) -> dict[str, list[str]]:
    found = reads(text)
    return {key: sorted(dotted(p) for p in value) for key, value in found.fields.items()}


def test_reads_follows_chains_indexes_guards_macros_and_the_envelope() -> None:
    assert paths(
        """{
          "a": has(payload.x.y) ? payload.x.y : null,
          "b": payload["@odata.type"].z,
          "c": payload.tags.map(t, t.name),
          "d": payload.items[0].id,
          "e": envelope.payload.q + envelope.origin,
          "f": size(payload.l) > 0 ? string(payload.n) : "",
          "g": payload.m.exists(v, v.k == "x") ? 1 : 0,
          "h": payload,
          "i": "constant",
          "j": payload.byKey[payload.key]
        }"""
    ) == {
        "a": ["x.y"],
        "b": ["@odata.type.z"],
        "c": ["tags[].name"],
        "d": ["items[].id"],
        "e": ["q"],
        "f": ["l", "n"],
        "g": ["m[].k"],
        "h": ["payload"],
        "i": [],
        "j": ["byKey", "key"],
    }
    whole = reads("payload.a.b == 1 && payload.c")
    assert not whole.literal and sorted(dotted(p) for p in whole.other) == ["a.b", "c"]


def test_records_in_finds_lists_and_single_resources() -> None:
    assert records_in([{"id": 1}, 2]) == [{"id": 1}]
    assert records_in({"data": [{"id": 1}], "next_page": None}) == [{"id": 1}]
    assert records_in({"result": {"items": [{"id": 2}]}}) == [{"id": 2}]
    assert records_in({"data": {"gid": "7"}}) == [{"data": {"gid": "7"}}, {"gid": "7"}]


def v2_definition() -> Definition:
    """Todoist's task mapping as someone would write it from the REST v2 reference (``created_at``,
    ``is_completed``, ``content``), run over what API v1 sends (``added_at``, ``checked``)."""
    mapping = Mapping(
        schema="task",
        variant="task",
        map="""{
          "external_id": string(payload.id),
          "title": payload.content,
          "completed": has(payload.is_completed) && payload.is_completed == true,
          "source_created_at": has(payload.created_at) ? payload.created_at : null
        }""",
    )
    return Definition(id="todoist", name="Todoist", description="", operations=todoist.operations, mappings=(mapping,))


def test_a_field_name_of_another_api_version_is_never_present_and_its_model_field_null() -> None:
    report = coverage(v2_definition(), read_paths([TODOIST / "sync_full.yaml"]))
    [task] = report.mappings
    assert (task.records, task.mapped, task.rejected) == (2, 2, 0)  # a dry run would say all is well
    fields = {f.field: f for f in task.fields}
    assert (fields["source_created_at"].status, fields["source_created_at"].filled) == ("null", 0)
    assert [(u.path, u.present) for u in fields["source_created_at"].reads] == [("created_at", 0)]
    assert task.never_present == ["created_at", "is_completed"]
    assert fields["completed"].status == "filled"  # false is a value: the read says it never arrived
    assert fields["due_at"].status == "not_written" and fields["title"].status == "filled"
    unused = {u.path: u.present for u in task.unused}
    assert unused["added_at"] == 2 and unused["checked"] == 2 and "content" not in unused
    text = render(report)
    assert "read but never present in payloads: created_at, is_completed" in text
    assert "source_created_at  null" in text and "created_at 0/2 never present" in text


def test_the_shipped_todoist_mapping_fills_what_v1_sends() -> None:
    [task] = coverage(todoist, read_paths([TODOIST / "sync_full.yaml", TODOIST / "sync_incremental.json"])).mappings
    fields = {f.field: f for f in task.fields}
    assert fields["source_created_at"].status == "filled" and fields["completed"].status == "filled"
    assert "added_at" not in {u.path for u in task.unused}


def test_a_required_field_read_under_a_wrong_name_rejects_and_says_so(tmp_path: Path) -> None:
    """Payloads named for a mapping (``--schema``) are taken as they are: a list of records, or one."""
    items = response_fixture(TODOIST, "sync_full")["body"]["items"]
    (tmp_path / "items.json").write_text(json.dumps(items))
    mapping = Mapping(schema="task", variant="task", map='{"external_id": string(payload.id), "title": payload.name}')
    definition = Definition(
        id="todoist", name="Todoist", description="", operations=todoist.operations, mappings=(mapping,)
    )
    [task] = coverage(definition, read_paths([tmp_path]), schema="task", variant="task").mappings
    assert task.records == 2 and task.rejected == 2 and task.rejects == {"map_error": 2}
    assert task.never_present == ["name"]


def test_discover_prefers_cassettes_then_fixtures(tmp_path: Path) -> None:
    fixtures = tmp_path / "tests" / "fixtures" / "acme"
    fixtures.mkdir(parents=True)
    (fixtures / "page.json").write_text(json.dumps({"status": 200, "headers": {}, "body": [{"id": 1}]}))
    (fixtures / "error.json").write_text(json.dumps({"status": 401, "headers": {}, "body": {"error": "no"}}))
    found = discover("acme", root=tmp_path, package_dir=None)
    assert found.kind == "fixtures" and [e.body for e in found.exchanges] == [[{"id": 1}]]
    cassettes = tmp_path / "tests" / "cassettes" / "acme"
    cassettes.mkdir(parents=True)
    (cassettes / "Sync.yaml").write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "interactions": [
                    {
                        "request": {
                            "method": "GET",
                            "uri": "https://api.acme.example/v1/items?page=2",
                            "body": None,
                            "headers": {},
                        },
                        "response": {
                            "status": {"code": 200, "message": "OK"},
                            "headers": {},
                            "body": {"string": json.dumps([{"id": 2}])},
                        },
                    }
                ],
            }
        )
    )
    found = discover("acme", root=tmp_path, package_dir=None)
    assert found.kind == "cassettes"
    [exchange] = found.exchanges
    assert (exchange.method, exchange.path, exchange.body) == ("GET", "/v1/items", [{"id": 2}])
    assert discover("other", root=tmp_path, package_dir=None).kind == "none"


runner = CliRunner()


def test_the_command_prints_a_table_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the fixtures are found from the checkout's root
    text = runner.invoke(app, ["mapping", "coverage", "todoist"])
    assert text.exit_code == 0, text.output
    # Todoist has cassettes (tests/cassettes/todoist): those are its recordings, preferred to the fixture files.
    assert "mapping coverage of todoist" in text.output and "cassette file(s)" in text.output
    assert "task/task:" in text.output and "model field" in text.output
    given = runner.invoke(
        app, ["mapping", "coverage", "todoist", "--json", "--payloads", str(TODOIST / "sync_full.yaml")]
    )
    assert given.exit_code == 0, given.output
    report = json.loads(given.output)
    assert report["source"] == "files" and report["mappings"][0]["schema"] == "task"
    assert {f["field"] for f in report["mappings"][0]["fields"]} >= {"external_id", "title", "due_at"}


def test_the_command_refuses_what_it_cannot_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert "no definition" in runner.invoke(app, ["mapping", "coverage", "nope"]).output
    missing = runner.invoke(app, ["mapping", "coverage", "todoist"])
    assert missing.exit_code == 1 and "no recorded payloads" in missing.output
    (tmp_path / "broken.json").write_text("{")
    broken = runner.invoke(app, ["mapping", "coverage", "todoist", "--payloads", str(tmp_path / "broken.json")])
    assert broken.exit_code == 1 and "not a JSON file" in broken.output


def test_a_webhook_cassette_gives_its_deliveries_bodies(tmp_path: Path) -> None:
    """``engine.testing``'s webhook cassettes hold example deliveries as requests: those bodies are payloads."""
    delivery = {"action": "added", "repositories_added": [{"id": 1, "full_name": "acme/tether"}]}
    cassette = tmp_path / "webhook.app.yaml"
    cassette.write_text(
        yaml.safe_dump(
            {
                "version": 1,
                "metadata": {"kind": "webhook", "webhook": "app"},
                "interactions": [
                    {
                        "request": {
                            "method": "POST",
                            "uri": "https://tether.example/v1/webhooks/x",
                            "headers": {},
                            "body": json.dumps(delivery),
                        },
                        "response": {
                            "status": {"code": 200, "message": "OK"},
                            "headers": {},
                            "body": {"string": '{"ok": true}'},
                        },
                    }
                ],
            }
        )
    )
    [exchange] = read_paths([cassette]).exchanges
    assert exchange.body == delivery and exchange.path is None
