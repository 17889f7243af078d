"""``tether records``: read ingest records from the database, through the API's own query (``ingest.records``).

An operator command: it reads the database directly, so it sees every tenant unless ``--tenant`` narrows it.
"""

from __future__ import annotations

from typing import Any

import typer

from engine.errors import TetherError
from engine.settings import Settings

records_app = typer.Typer(help="Read the records ingest landed (the API's GET /v1/records).", no_args_is_help=True)

#: Columns every table starts with; a few of the schema's own fields follow.
_LEADING = ("id", "integration_id")
_OWN_FIELDS = 3
_WIDTH = 32


@records_app.command("list")
def records_list(
    schema: str = typer.Argument(..., help="Ingest model schema (asset, directory_account, …)."),
    integration: str = typer.Option(None, "--integration", help="One integration's records."),
    owner: str = typer.Option(None, "--owner", help="One owner's integrations' records."),
    definition: str = typer.Option(None, "--definition", help="One definition's records."),
    tenant: str = typer.Option(None, "--tenant", help="One tenant's records (default: every tenant)."),
    updated_since: str = typer.Option(None, "--updated-since", help="RFC 3339: records updated at or after it."),
    cursor: str = typer.Option(None, "--cursor", help="next_cursor of the previous page."),
    limit: int = typer.Option(100, "--limit", help="Records per page (1..500)."),
    as_json: bool = typer.Option(False, "--json", help="Print the page as the API answers it."),
) -> None:
    """One page of a schema's records, in id order."""
    from ingest.records import RecordFilters, Scope, list_records, model_spec, parse_rfc3339

    def page() -> Any:
        filters = RecordFilters(
            integration_id=integration,
            owner_id=owner,
            definition_id=definition,
            updated_since=parse_rfc3339(updated_since, "--updated-since") if updated_since is not None else None,
        )
        return list_records(_database(), Scope(tenant_id=tenant), schema, filters, cursor=cursor, limit=limit)

    result = _answer(page)
    if as_json:
        typer.echo(result.model_dump_json(indent=2))
        return
    columns = (*_LEADING, *model_spec(schema).allowed[:_OWN_FIELDS], "updated_at")
    typer.echo(_table(columns, result.data))
    if result.next_cursor:
        typer.echo(f"more: --cursor {result.next_cursor}", err=True)


@records_app.command("show")
def records_show(
    schema: str = typer.Argument(..., help="Ingest model schema."),
    record_id: int = typer.Argument(..., help="The record's id."),
    tenant: str = typer.Option(None, "--tenant", help="Only if it is this tenant's."),
) -> None:
    """One record, as JSON (the API's GET /v1/records/{schema}/{id})."""
    from pydantic import TypeAdapter

    from ingest.records import Scope, get_record

    record = _answer(lambda: get_record(_database(), Scope(tenant_id=tenant), schema, record_id))
    typer.echo(TypeAdapter(dict[str, Any]).dump_json(record, indent=2).decode())  # as the API serializes it


def _database() -> Any:
    from engine.store.database import Database

    return Database(Settings().database_url)


def _answer(read: Any) -> Any:
    try:
        return read()
    except TetherError as exc:  # an unknown schema or record, a bad cursor or timestamp: said, not a traceback
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from None


def _table(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> str:
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    text = text.replace("\n", " ")
    return text if len(text) <= _WIDTH else text[: _WIDTH - 1] + "…"
