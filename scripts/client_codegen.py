#!/usr/bin/env python3
"""Write ``src/tether_client/_models.py`` from the server's ``/openapi.json`` with datamodel-code-generator.

    scripts/client_codegen.py           regenerate the client's models
    scripts/client_codegen.py --check   exit 1 with a one-line reason when they are stale (writes nothing)

The OpenAPI document is the one the docs site publishes, built by ``scripts/docs_hooks/api_reference.py`` (the app
as ``tether serve`` builds it, over a scratch SQLite file), so the client's models are the server's response and
request schemas and cannot drift from them unnoticed: the test command runs ``--check``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "src" / "tether_client" / "_models.py"
HEADER = (
    "# DO NOT EDIT: written by scripts/client_codegen.py (datamodel-code-generator) from the server's /openapi.json.\n"
    "# ruff: noqa: E501"
)
#: Options of datamodel-codegen; the formatters are ruff's, so the output passes the project's lint as written.
OPTIONS = (
    "--input-file-type=openapi",
    "--output-model-type=pydantic_v2.BaseModel",
    "--target-python-version=3.11",
    "--use-standard-collections",
    "--use-union-operator",
    "--use-annotated",
    "--field-constraints",
    "--disable-timestamp",
    "--formatters",
    "ruff-format",
    "ruff-check",
)


def openapi_document() -> dict[str, object]:
    sys.path.insert(0, str(ROOT / "scripts" / "docs_hooks"))
    from api_reference import openapi_document as build

    return build()


def render() -> str:
    with tempfile.TemporaryDirectory(prefix="tether-client-codegen-") as scratch:
        source, output = Path(scratch) / "openapi.json", Path(scratch) / "_models.py"
        source.write_text(json.dumps(openapi_document(), indent=1))
        command = [sys.executable, "-m", "datamodel_code_generator", f"--input={source}", f"--output={output}"]
        command += [*OPTIONS, "--custom-file-header", HEADER]
        # ruff (the formatter step) reads the project's configuration from the working directory.
        subprocess.run(command, check=True, cwd=ROOT)
        return output.read_text()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the models are stale; write nothing")
    args = parser.parse_args()
    text = render()
    if args.check:
        if not TARGET.exists() or TARGET.read_text() != text:
            print(f"client_codegen: {TARGET.relative_to(ROOT)} is stale; run scripts/client_codegen.py")
            return 1
        return 0
    TARGET.write_text(text)
    print(f"client_codegen: wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
