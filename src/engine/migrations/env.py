"""Alembic environment: the engine tables, the internal models and the host packages' models (``ingest.hosts``).

The built-in tables share ``SQLModel.metadata``; a host package may keep its tables in a metadata of its own (a base
with its own registry), so the target is every distinct metadata. ``config.attributes["only_package"]`` (set by
``tether db revision --models``) narrows autogenerate to one host package's tables.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import MetaData, engine_from_config, pool
from sqlmodel import SQLModel

import engine.sandbox.tables
import engine.store.tables  # noqa: F401  (registers the engine tables)
import ingest.models  # noqa: F401  (registers the internal models)
from ingest.hosts import HostPackage, host_packages

config = context.config
only: HostPackage | None = config.attributes.get("only_package")


def _metadatas(packages: tuple[HostPackage, ...], *, builtin: bool) -> list[MetaData]:
    found = [SQLModel.metadata] if builtin else []
    for package in packages:
        for model in package.models:
            metadata = model.__table__.metadata  # type: ignore[attr-defined]
            if all(metadata is not m for m in found):
                found.append(metadata)
    return found


def _only_tables(tables: set[str]):  # type: ignore[no-untyped-def]
    """An ``include_object`` that keeps one package's tables (and what is on them) and ignores every other."""

    def include(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        table = name if type_ == "table" else getattr(getattr(obj, "table", None), "name", None)
        return table is None or table in tables

    return include


if only is None:
    target_metadata: list[MetaData] = _metadatas(host_packages(), builtin=True)
    include_object = None
else:
    target_metadata = _metadatas((only,), builtin=False)
    include_object = _only_tables({m.__table__.name for m in only.models})  # type: ignore[attr-defined]


def run_migrations(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
        # ``Database.upgrade(on_step=...)``: a callback per applied revision (the CLI's progress display).
        on_version_apply=config.attributes.get("on_version_apply"),
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    section = config.get_section(config.config_ini_section) or {}
    connectable = engine_from_config(section, prefix="sqlalchemy.", poolclass=pool.NullPool)
    with connectable.connect() as conn:
        run_migrations(conn)
