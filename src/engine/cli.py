"""The ``tether`` command line."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import typer

from engine.cli_records import records_app
from engine.cli_runs import runs_app
from engine.cli_workers import scheduler as scheduler_cmd
from engine.cli_workers import worker as worker_cmd
from engine.errors import ConfigurationError, DefinitionError
from engine.settings import Settings, get_settings
from ingest.cli import mapping_app

app = typer.Typer(help="Tether integration engine.", no_args_is_help=True, add_completion=False)
definitions_app = typer.Typer(help="Inspect and check provider definitions.", no_args_is_help=True)
db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)
keys_app = typer.Typer(help="The master key ring that seals stored credentials.", no_args_is_help=True)
app.add_typer(definitions_app, name="definitions")
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
api_keys_app = typer.Typer(help="API keys the host app uses to call Tether.", no_args_is_help=True)
app.add_typer(api_keys_app, name="api-keys")
app.command("worker")(worker_cmd)
app.command("scheduler")(scheduler_cmd)
app.add_typer(mapping_app, name="mapping")
app.add_typer(records_app, name="records")
app.add_typer(runs_app, name="runs")
changes_app = typer.Typer(help="The change feed (GET /v1/changes) and its retention.", no_args_is_help=True)
app.add_typer(changes_app, name="changes")


def _fail(message: str, code: int = 1) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(code)


def _runtime(settings: Settings | None = None):  # type: ignore[no-untyped-def]
    from engine.runtime import Runtime

    try:
        return Runtime.start(settings or Settings())
    except (DefinitionError, ConfigurationError) as exc:
        _fail(f"error: {exc.message}")


@app.command()
def serve(
    host: str = typer.Option(None, help="Interface to bind (default TETHER_HOST or 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default TETHER_PORT or 8000)."),
    migrate: bool = typer.Option(True, help="Apply pending migrations before serving."),
    access_log: bool = typer.Option(
        True, "--access-log/--no-access-log", help="Log every request (a busy webhook endpoint may not want to)."
    ),
) -> None:
    """Serve the HTTP API."""
    import uvicorn

    from engine.api import create_app
    from engine.processes import tune_gc, uvicorn_log_config

    settings = serve_settings(host, port)
    from engine.observability import tracing

    tracing.configure(settings, service="tether-server")  # before the app and the embedded worker trace anything
    runtime = _runtime(settings)
    if migrate:
        runtime.db.upgrade()
    bind_host, bind_port = settings.host, settings.port
    embedded = None
    if not settings.broker_url:
        from engine.processes import start_embedded

        embedded = start_embedded(runtime)  # the embedded default: runs and deliveries processed in this process
    queue = settings.broker_url.split("://")[0] if settings.broker_url else "in-process"
    typer.echo(f"Tether serving on http://{bind_host}:{bind_port} (database: {runtime.db.dialect}, queue: {queue})")
    for line in next_steps(settings):
        typer.echo(line)
    for definition_id, missing in runtime.disabled.items():
        typer.echo(f"definition {definition_id} disabled: set {', '.join(missing)} to enable it")
    app = create_app(runtime)
    tune_gc()
    try:
        uvicorn.run(
            app,
            host=bind_host,
            port=bind_port,
            log_level="info",
            access_log=access_log,
            log_config=uvicorn_log_config(settings.log_level, settings.log_format),
        )
    finally:
        if embedded is not None:
            embedded.stop()


def next_steps(settings: Settings) -> list[str]:
    """What ``tether serve`` says right after its banner: where a new user goes next (before the list of definitions
    that need operator config, which is long and only an operator's business)."""
    from engine.web.session import dev_login_enabled

    base = settings.public_url.rstrip("/")
    login = "dev login on" if dev_login_enabled(settings) else "dev login off: TETHER_DEV_LOGIN=1 in development"
    lines = [f"  page:       {base}/integrations ({login})"]
    if settings.sandbox_enabled():
        lines.append(f"  sandbox:    {base}/sandbox/ (a provider to connect to: API key sbx_key_acme, or Connect)")
    else:
        lines.append("  sandbox:    off (TETHER_SANDBOX=1 turns it on)")
    lines += [
        "  Quickstart: the README's first sh block (README.md, section Quickstart), run while this serves",
        f"  API:        {base}/openapi.json",
    ]
    return lines


def serve_settings(host: str | None, port: int | None) -> Settings:
    """The settings ``tether serve`` runs with: ``--host``/``--port`` over ``TETHER_HOST``/``TETHER_PORT``, and the
    default public URL derived from them (``TETHER_PUBLIC_URL``, when set, is kept as it is)."""
    # Exported, so that every ``Settings()`` of this process agrees with the server's (the embedded worker, the
    # OIDC issuer of a definition's process identity), not only the runtime's.
    if host:
        os.environ["TETHER_HOST"] = host
    if port:
        os.environ["TETHER_PORT"] = str(port)
    get_settings.cache_clear()
    return Settings()


@definitions_app.command("list")
def definitions_list(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """IDs, connections, operations, webhooks and the schemas each emits."""
    from engine.catalog.describe import summarize

    runtime = _runtime()
    views = [summarize(d, enabled=runtime.enabled(d.id)) for d in runtime.registry.definitions()]
    if as_json:
        typer.echo(json.dumps([v.model_dump() for v in views], indent=2))
        return
    for v in views:
        state = "enabled" if v.enabled else "disabled"
        typer.echo(f"{v.id}  ({v.name}, {state})")
        typer.echo(f"  connections: {', '.join(v.connections) or '-'}")
        typer.echo(f"  operations:  {', '.join(v.operations) or '-'}")
        typer.echo(f"  webhooks:    {', '.join(v.webhooks) or '-'}")
        emits = ", ".join(f"{s.schema_name}/{s.variant}" if s.variant else s.schema_name for s in v.schemas)
        typer.echo(f"  emits:       {emits or '-'}")


@definitions_app.command("show")
def definitions_show(definition_id: str) -> None:
    """Everything the catalog knows about one definition, as JSON."""
    from engine.catalog.describe import detail

    runtime = _runtime()
    if definition_id not in runtime.registry:
        _fail(f"error: no definition {definition_id!r}")
    view = detail(
        runtime.registry.get(definition_id),
        enabled=runtime.enabled(definition_id),
        missing_config=runtime.disabled.get(definition_id, []),
        unoffered=runtime.unoffered.get(definition_id, {}),
    )
    typer.echo(view.model_dump_json(indent=2))


@definitions_app.command("check")
def definitions_check() -> None:
    """Register every definition; exit non-zero with the broken rule if one is inconsistent."""
    from engine.catalog.loading import load_registry

    try:
        registry = load_registry(Settings())
    except (DefinitionError, ConfigurationError) as exc:
        _fail(f"definition check failed: {exc.message}")
    except ImportError as exc:
        _fail(f"definition check failed: {exc}")
    typer.echo(f"ok: {len(registry)} definition(s) registered")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head")) -> None:
    """Apply migrations (default: to the latest). A progress bar on stderr when it is a terminal."""
    from engine.cli_progress import steps
    from engine.store.database import Database

    settings = Settings()
    db = Database(settings.database_url)
    with steps("migrating", db.pending_upgrades(revision)) as advance:
        db.upgrade(revision, on_step=lambda applied: advance(label=f"migrated to {applied}"))
    typer.echo(f"database at revision {db.current_revision()} ({db.dialect})")


@db_app.command("revision")
def db_revision(
    models: str = typer.Option(..., "--models", help="The host model module (as in TETHER_MODEL_MODULES)."),
    message: str = typer.Option(..., "-m", "--message", help="What the revision does."),
) -> None:
    """Autogenerate a host model package's next migration (its tables only, on its own branch)."""
    from engine.store.database import Database
    from engine.store.revisions import host_revision

    settings = Settings()
    try:
        path = host_revision(Database(settings.database_url), models, message, settings.extra_model_modules())
    except ConfigurationError as exc:
        _fail(f"revision failed: {exc.message}")
    typer.echo(f"wrote {path}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Re-wrap every stored secret under the active key, online.

    With the embedded key file, this first generates a new key and puts it in front of the old one ("new,old").
    With TETHER_SECRET_MASTER_KEY, put the new key first yourself on every process, then run this. Retired keys
    stay until `tether keys prune`: a process started before the rotation may still seal with the old key.
    """
    from engine.cli_progress import steps
    from engine.custody.crypto import KeyRing, generate_master_key
    from engine.custody.masterkey import load_keyring

    settings = Settings()
    source = load_keyring(settings)
    keyring = source.keyring
    if source.path is not None:
        rotated = f"{generate_master_key()},{source.path.read_text(encoding='ascii').strip()}"
        _replace_key_file(source.path, rotated)
        keyring = KeyRing.from_master_key(rotated)
    store = _keystore(settings, keyring)
    with steps("re-wrapping", len(store.REWRAP_STAGES)) as advance:
        moved = store.rewrap_all(on_stage=lambda stage, count: advance(label=f"re-wrapped {stage} ({count})"))
    typer.echo(
        f"re-wrapped {moved} secret(s) under key {keyring.active_key_id}. Restart running engines so they "
        "seal with it, then run `tether keys prune`."
    )


@keys_app.command("prune")
def keys_prune() -> None:
    """Re-wrap stragglers, then drop retired keys that no stored secret uses (key file only)."""
    from engine.custody.masterkey import load_keyring

    settings = Settings()
    source = load_keyring(settings)
    store = _keystore(settings, source.keyring)
    moved = store.rewrap_all()
    in_use = store.key_ids_in_use()
    retired = [k for k in source.keyring.key_ids if k != source.keyring.active_key_id]
    still_used = sorted(set(retired) & in_use)
    if still_used:
        _fail(f"key(s) {', '.join(still_used)} still seal stored secrets; run again once engines are restarted")
    if source.path is None:
        typer.echo(
            f"re-wrapped {moved} secret(s); no stored secret uses a retired key: remove them from "
            "TETHER_SECRET_MASTER_KEY"
        )
        return
    _replace_key_file(source.path, source.path.read_text(encoding="ascii").strip().split(",")[0])
    typer.echo(f"re-wrapped {moved} secret(s); dropped {len(retired)} retired key(s) from {source.path}")


@api_keys_app.command("create")
def api_keys_create(
    tenant: str = typer.Option(..., help="The tenant the key acts for."),
    role: str = typer.Option("server", help="server (every owner of the tenant) or user (one owner)."),
    owner: str = typer.Option("", help="The owner, for user keys."),
    name: str = typer.Option("", help="A label to tell keys apart."),
) -> None:
    """Create an API key; it is printed once and stored only as a digest."""
    from engine.api.principal import Unauthenticated, create_api_key
    from engine.store.database import Database

    if role not in ("server", "user"):
        _fail("error: --role must be server or user")
    try:
        plain, row = create_api_key(
            Database(Settings().database_url),
            tenant=tenant,
            role=role,
            owner=owner,  # type: ignore[arg-type]
            name=name,
        )
    except Unauthenticated as exc:
        _fail(f"error: {exc.message}")
    typer.echo(plain)
    typer.echo(f"key {row.prefix}… for tenant {tenant} ({role}); store it now, it is not shown again", err=True)


def _keystore(settings: Settings, keyring):  # type: ignore[no-untyped-def]
    from engine.custody.keystore import Keystore
    from engine.store.database import Database

    return Keystore(Database(settings.database_url), keyring)


@keys_app.command("new")
def keys_new() -> None:
    """Print a new master key (for TETHER_SECRET_MASTER_KEY)."""
    from engine.custody.crypto import generate_master_key

    typer.echo(generate_master_key())


def _replace_key_file(path: Path, text: str) -> None:
    """Atomically replace the key file, keeping it private (0600)."""
    import os

    tmp = path.with_name(path.name + ".new")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(text + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@changes_app.command("prune")
def changes_prune(
    changes_days: float = typer.Option(None, "--changes-days", help="Override TETHER_CHANGES_RETENTION_DAYS."),
    event_days: float = typer.Option(None, "--event-days", help="Override TETHER_EVENT_RETENTION_DAYS."),
) -> None:
    """Delete change-feed entries and final event deliveries past their retention (the scheduler does it hourly)."""
    from engine.store.database import Database
    from engine.store.retention import prune

    settings = Settings()
    if changes_days is not None:
        settings.changes_retention_days = changes_days
    if event_days is not None:
        settings.event_retention_days = event_days
    db = Database(settings.database_url)
    try:
        pruned = prune(db, settings)
    finally:
        db.dispose()
    typer.echo(
        f"pruned {pruned.changes} changes (kept {_days(settings.changes_retention_days)}), "
        f"{pruned.deliveries} event deliveries and {pruned.events} events (kept {_days(settings.event_retention_days)})"
    )


def _days(days: float) -> str:
    return f"{days:g} days" if days > 0 else "forever"


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="tether")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
