"""SCIM conformance: scim2-tester (python-scim's checker) against Tether's SCIM endpoints served on 127.0.0.1.

scim2-tester pulls scim2-client, which pulls ``httpx2``; with httpx2 installed authlib switches to it and
``engine.custody.oauth`` breaks, so the checker lives in its own venv under ``.cache/scim-venv`` (git-ignored), created
on first use (``python -m venv`` + ``pip install scim2-tester==0.5.2 scim2-cli==0.6.0``) or named by
``TETHER_SCIM_TESTER`` (a path to a ``scim2`` executable). The test runs
``scim2 --url <base> -h "Authorization: Bearer <token>" test`` against a uvicorn server, counts the results,
writes them to ``docs/scim-conformance.md`` and asserts a floor.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine.api.principal import Principal
from engine.scim.connect import connect
from engine.store.database import Database
from support.server import free_port, serve

from .test_scim import make_app, make_runtime

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".cache" / "scim-venv"
PINS = ("scim2-tester==0.5.2", "scim2-cli==0.6.0", "scim2-models==0.12.3")
#: Checks that must succeed (every check the tester generates for Tether's core User/Group discovery today).
FLOOR = 113
_LINE = re.compile(r"^(SUCCESS|ERROR|SKIPPED|CRITICAL|WARNING)\b\s*(.*)$")


def scim2_cli() -> Path:
    named = os.environ.get("TETHER_SCIM_TESTER")
    if named:
        return Path(named)
    exe = VENV / "bin" / "scim2"
    if not exe.exists():
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True, capture_output=True, timeout=120)
            subprocess.run(
                [str(VENV / "bin" / "pip"), "install", "-q", *PINS], check=True, capture_output=True, timeout=600
            )
        except (subprocess.SubprocessError, OSError) as exc:
            if os.environ.get("CI"):
                raise
            pytest.skip(f"scim2-tester could not be installed: {type(exc).__name__}")
    return exe


def run_checker(exe: Path, url: str, token: str) -> tuple[Counter[str], list[str], str]:
    proc = subprocess.run(
        [str(exe), "--url", url, "-h", f"Authorization: Bearer {token}", "test"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_COLOR": "1", "TERM": "dumb", "COLUMNS": "200"},
    )
    output = re.sub(r"\x1b\[[0-9;]*m", "", proc.stdout + proc.stderr)
    counts: Counter[str] = Counter()
    failures: list[str] = []
    for line in output.splitlines():
        match = _LINE.match(line.strip())
        if match:
            counts[match.group(1)] += 1
            if match.group(1) != "SUCCESS":
                failures.append(line.strip())
    return counts, failures, output


def write_report(counts: Counter[str], failures: list[str]) -> None:
    total = sum(counts.values())
    lines = [
        "# SCIM conformance (scim2-tester)",
        "",
        "Written by `tests/definitions/test_scim_conformance.py`: scim2-tester 0.5.2 (`scim2 … test`, from scim2-cli",
        "0.6.0) against `/v1/scim/{token}/v2` served by uvicorn on 127.0.0.1 over PostgreSQL. The tester derives",
        "its checks from the server's discovery documents (Tether: core User and Group, no EnterpriseUser",
        "extension); against the reference `scim2-server` it runs 135.",
        "",
        "| result | checks |",
        "|---|---|",
        *[f"| {status} | {n} |" for status, n in sorted(counts.items())],
        f"| **total** | {total} |",
        "",
        f"Floor asserted by the test: {FLOOR} SUCCESS.",
        "",
    ]
    if failures:
        lines += ["## Not passing", "", *[f"- `{f[:200]}`" for f in failures], ""]
    (ROOT / "docs" / "scim-conformance.md").write_text("\n".join(lines))


async def test_scim2_tester(postgres_database: Database) -> None:
    exe = scim2_cli()
    runtime = make_runtime(postgres_database)
    conn = await connect(runtime, Principal(tenant_id="t1", role="server"), owner_id="o1")
    port = free_port()
    with serve(make_app(runtime), port) as base:
        url = f"{base}/v1/scim/{conn.token}/v2"
        counts, failures, output = run_checker(exe, url, conn.bearer_token)
        wrong, _, _ = run_checker(exe, url, "not-the-token")
    assert sum(counts.values()) > 0, output[-3000:]
    write_report(counts, failures)
    assert counts["SUCCESS"] >= FLOOR, "\n".join(failures[:40])
    # The checker discriminates: a wrong token fails almost everything.
    assert wrong["SUCCESS"] < counts["SUCCESS"] // 2
