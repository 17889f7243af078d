"""``tether db revision --models MODULE``: autogenerate a host model package's next Alembic revision.

The revision compares the database with that package's tables only (``engine/migrations/env.py``, ``only_package``)
and lands in the package's ``migrations/`` on its own branch: the first one opens the branch (``branch_labels``) and
depends on Tether's head at the time, so ``tether db upgrade`` always creates Tether's tables first.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from engine.errors import ConfigurationError
from engine.store.database import MIGRATIONS, Database, alembic_config
from ingest.hosts import HostPackage
from ingest.setup import configure


def host_revision(db: Database, module: str, message: str, setting_modules: list[str]) -> Path:
    """Write the revision and return its path; the database must be at every head (``tether db upgrade``)."""
    modules = list(dict.fromkeys([*setting_modules, module]))
    package = next(p for p in configure(modules) if p.module == module)
    directory = package.migrations or _default_dir(package)
    if not directory.is_dir():
        directory.mkdir(parents=True)
        package = next(p for p in configure(modules) if p.module == module)  # now with its migrations directory
    with db.engine.begin() as connection:
        config = alembic_config(db.url)
        config.attributes["connection"] = connection
        config.attributes["only_package"] = package
        script = ScriptDirectory.from_config(config)
        opened = _branch_exists(script, package.branch)
        try:
            written = command.revision(
                config,
                message=message,
                autogenerate=True,
                head=f"{package.branch}@head" if opened else "base",
                branch_label=None if opened else package.branch,
                depends_on=None if opened else _tether_head(script),
                version_path=str(directory),
            )
        except CommandError as exc:
            raise ConfigurationError(f"cannot write a revision for {module}: {exc}") from exc
    if written is None or isinstance(written, list):
        raise ConfigurationError(f"alembic wrote no single revision for {module}")
    return Path(written.path)


def _default_dir(package: HostPackage) -> Path:
    import importlib

    origin = getattr(importlib.import_module(package.module), "__file__", None)
    if origin is None:
        raise ConfigurationError(f"{package.module} has no directory; set MIGRATIONS in it")
    return Path(origin).parent / "migrations"


def _branch_exists(script: ScriptDirectory, branch: str) -> bool:
    return any(branch in (rev.branch_labels or ()) for rev in script.walk_revisions())


def _tether_head(script: ScriptDirectory) -> str:
    own = MIGRATIONS / "versions"
    heads = [r for r in script.get_revisions("heads") if r is not None and Path(r.path).parent == own]
    if len(heads) != 1:
        raise ConfigurationError("Tether's own migrations must have exactly one head")
    return heads[0].revision
