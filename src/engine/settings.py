"""Engine settings, read from ``TETHER_*`` environment variables: every engine knob is a field here, and no other
engine module reads the environment for one.

Operator config of each definition is read separately (see ``engine.authoring.config``: ``TETHER_{DEFINITION}_{FIELD}``
and ``TETHER_SECRET_{DEFINITION}_{FIELD}``, named by the definitions' own models); this holds the engine's own knobs.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
#: What makes a ``TETHER_DEFINITION_MODULES`` entry a file path instead of a module path.
DEFINITION_FILE_SUFFIXES = (".toml", ".json")


class Settings(BaseSettings):
    # An empty variable (``TETHER_DEV_LOGIN=``, as shells and compose files leave them) means the default.
    model_config = SettingsConfigDict(
        env_prefix="TETHER_", extra="ignore", populate_by_name=True, env_ignore_empty=True
    )

    #: SQLAlchemy URL; the embedded default is a SQLite file in the working directory.
    database_url: str = "sqlite:///tether.db"
    #: Where ``tether serve`` binds (``--host`` and ``--port`` override them).
    host: str = "127.0.0.1"
    port: int = 8000
    #: ``redis://…`` or ``amqp://…`` in production; empty means the in-process worker.
    broker_url: str = ""
    #: Comma-separated definition IDs that must be enabled (start-up fails if their operator config is
    #: incomplete); ``*`` enables every definition whose operator config is complete.
    enabled_definitions: str = "*"
    #: Comma-separated module paths of extra definitions (each exposing ``definition``), for definitions
    #: developed outside the built-in catalog and not packaged with an entry point yet; an entry ending in
    #: ``.toml`` or ``.json`` is the path of a definition file.
    definition_modules: str = ""
    #: Folders of definition files (``*.toml``, ``*.json``: providers declared as data, and overrides of data
    #: providers), separated like PATH (``:``; ``;`` on Windows); every file is loaded at start-up.
    definitions_dir: str = ""
    #: Comma-separated module paths of a host app's own ingest models (``ingest.hosts``), besides the ones the
    #: ``tether.models`` entry points name.
    model_modules: str = ""
    #: The most pages one run of a declarative stream reads (``engine.kit.streams``); a stream may set fewer.
    stream_max_pages: int = Field(default=1000, ge=1)
    #: Tests only: allow http:// and loopback provider URLs (read per outbound client, so tests may set it).
    allow_loopback_providers: bool = False
    #: Where the embedded default keeps its generated master key.
    state_dir: str = ".tether"
    #: Log level of ``tether serve``, ``worker`` and ``scheduler`` (Python logging level names).
    log_level: str = Field(default="INFO")
    #: Log lines of ``tether serve``, ``worker`` and ``scheduler``: ``text`` for a terminal, or ``json`` (one object a
    #: line, with the run, delivery, integration and trace IDs as fields) for a log pipeline.
    log_format: Literal["text", "json"] = "text"
    #: Shared secret for the signed principal header (``X-Tether-Principal``); empty disables that header.
    secret_principal_key: SecretStr = SecretStr("")
    #: Public base URL of this server, for OAuth redirect URIs, connect links and webhook URLs. Unset, it is where
    #: this server listens (``http://{host}:{port}``, loopback for a wildcard bind): ``tether serve --port P`` then
    #: hands out links to port P.
    public_url: str = ""
    #: Comma-separated origins an auth flow may send the browser back to (besides ``public_url``'s own).
    allowed_return_origins_list: str = Field(default="", validation_alias="TETHER_ALLOWED_RETURN_ORIGINS")
    #: The master key (base64 of 32 bytes); unset, the embedded default keeps a generated one in ``state_dir``.
    secret_master_key: SecretStr = SecretStr("")
    #: The page's development login (``None``: on only for the embedded default on loopback).
    dev_login: bool | None = None
    #: The sandbox provider under ``/sandbox`` (``engine.sandbox``); ``None``: on only for the embedded default.
    sandbox: bool | None = None
    #: Lifetime of the sandbox's OAuth access tokens: short, so a demo sees the Keystore refresh them.
    sandbox_token_seconds: int = Field(default=300, ge=1)
    #: The rate governor's store (``engine.governor``): ``redis://…`` shares every provider budget across the workers
    #: of every host; unset, a Redis broker's URL is used, else each process keeps its own budgets (the embedded
    #: default has one process).
    governor_url: str = ""
    #: Longest a provider call waits on the event loop for its budget before its run is deferred through the queue.
    governor_max_wait_seconds: float = Field(default=1.0, ge=0, le=60)
    #: Dramatiq queue name, and the Redis key prefix of the broker.
    queue: str = "tether"
    broker_namespace: str = "tether"
    #: Redis broker: seconds after a worker's last heartbeat before the messages it fetched and never acknowledged
    #: (it died, or its host was cut off) go back to the queue, and how many broker commands in a million run that
    #: maintenance (Dramatiq's defaults: 60 s and 1000).
    broker_heartbeat_timeout_seconds: float = Field(default=60.0, gt=0)
    broker_maintenance_chance: int = Field(default=1000, ge=0, le=1_000_000)
    #: Traces (``engine.observability.tracing``): a file that receives every finished span as a JSON line (local
    #: debugging, tests); the standard OpenTelemetry variables below turn on the OTLP exporter or turn tracing off.
    trace_file: str = ""
    #: Where OTLP spans are encoded and sent: ``thread`` (the SDK's BatchSpanProcessor in this process) or
    #: ``process`` (a child process, off this one's GIL: engine.observability.span_shipping; on the loaded 2-core
    #: bench machine it cost more CPU in all than it took off the server, docs/benchmarks.md).
    trace_export: Literal["thread", "process"] = "thread"
    otel_exporter_otlp_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    otel_exporter_otlp_traces_endpoint: str = Field(default="", validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    otel_service_name: str = Field(default="", validation_alias="OTEL_SERVICE_NAME")
    #: Set: the SDK's sampler of that name (it reads ``OTEL_TRACES_SAMPLER_ARG`` itself); unset: Tether's default,
    #: a parent-based ratio sampler (``engine.observability.tracing.DEFAULT_SAMPLE_RATIO``, docs/decisions.md).
    otel_traces_sampler: str = Field(default="", validation_alias="OTEL_TRACES_SAMPLER")
    #: Database connection pool (PostgreSQL): connections kept, and extra ones opened under load.
    database_pool_size: int | None = None
    database_max_overflow: int | None = None
    #: Executor: seconds between run heartbeats, after which a silent run is stale, and the retry backoff bounds.
    run_heartbeat_seconds: float = 10.0
    run_stale_seconds: float = 60.0
    #: Seconds a run may go without progress (a provider answer, a payload, a checkpoint) before it is stopped as
    #: ``no_progress`` and, out of retries, ends ``stalled``; an operation's ``Policy.stall_window`` overrides it,
    #: 0 turns the watchdog off. Ten minutes: longer than any single provider call's deadline with its retries.
    run_stall_seconds: float = Field(default=600.0, ge=0)
    retry_min_backoff_seconds: float = 15.0
    retry_max_backoff_seconds: float = 3600.0
    #: Worker processes: seconds between reaper passes and delivery sweeps, and a delivery's age before a sweep
    #: queues it again.
    reap_interval_seconds: float = 15.0
    delivery_sweep_seconds: float = 60.0
    delivery_sweep_after_seconds: float = 60.0
    #: How long a worker's claim on a webhook delivery holds before another worker may take the delivery over (the
    #: first died, or its host was cut off): longer than any handler runs.
    delivery_lease_seconds: float = Field(default=300.0, gt=0)
    #: PostgreSQL connections per worker event loop for batched delivery claims and finishes
    #: (``engine.store.database.Database.worker_connections``): messages in flight run their statements side by
    #: side on these instead of queueing for one connection.
    worker_loop_connections: int = Field(default=3, ge=1, le=32)
    #: Outbound events (``engine.events``): seconds between retries of a failed delivery (comma-separated; the last
    #: repeats), each with +/-20% jitter, until the retry window from the event's creation closes (then ``dead``).
    event_retry_schedule: str = "5,30,120,600,3600,10800,21600"
    event_retry_window_seconds: float = 86400.0
    #: Total deadline of one delivery (connect to response read), and the worker's lease on a delivery it sends: a
    #: delivery still ``sending`` after its lease (a worker killed mid-delivery) is queued again by the sweep.
    event_delivery_timeout_seconds: float = 15.0
    event_lease_seconds: float = 60.0
    #: Seconds between sweeps queueing due deliveries (new ones, due retries, expired leases), and how long a
    #: queued one waits before a sweep sends its message again (the message was lost).
    event_sweep_seconds: float = 1.0
    event_requeue_after_seconds: float = 30.0
    #: After a secret rotation, seconds the previous secret keeps signing beside the new one.
    event_secret_overlap_seconds: float = 86400.0
    #: Retention (``engine.store.retention``): days the change feed and the outbound event log (final deliveries
    #: and their events) are kept (0: forever), and seconds between the scheduler's prune passes.
    changes_retention_days: float = 30.0
    event_retention_days: float = 30.0
    retention_prune_seconds: float = 3600.0
    #: CEL: the back end (``fast`` or ``celpy``) and the fast back end's cost budget per evaluation.
    cel_backend: str = "fast"
    cel_cost_limit: int = 1_000_000
    #: Metrics (``engine.observability.metrics``): ``GET /metrics`` is served when on. ``metrics_dir`` is a directory
    #: shared by every engine process of one host (``tether serve``, ``tether worker --processes N``): each writes
    #: its samples there (prometheus-client's multiprocess mode) and ``/metrics`` sums them; empty, each process
    #: keeps its own. Give it an empty directory at each start (a tmpfs), as prometheus-client requires.
    metrics: bool = True
    metrics_dir: str = ""
    #: The MCP server (``engine.mcp``, ``/mcp``): on or off; the longest a tool call waits for its run (seconds; a
    #: queued run still going then is answered with its ID and keeps running, an inline one is cancelled); the
    #: largest result it returns (bytes of JSON; past it, the run's ID and a truncated text); the host app's OAuth
    #: authorization servers (comma-separated issuer URLs) its protected resource metadata names.
    mcp: bool = True
    mcp_time_limit_seconds: float = Field(default=60.0, gt=0, le=3600)
    mcp_max_result_bytes: int = Field(default=65_536, ge=1024, le=16 * 1024 * 1024)
    mcp_authorization_servers_list: str = Field(default="", validation_alias="TETHER_MCP_AUTHORIZATION_SERVERS")

    @model_validator(mode="after")
    def _default_public_url(self) -> Settings:
        if not self.public_url.strip():
            self.public_url = listening_url(self.host, self.port)
        return self

    def embedded_default(self) -> bool:
        """The embedded default: a SQLite database, listening on and published at a loopback address.

        What turns on, unless told otherwise, the things only a developer's own machine should have (the dev login,
        the sandbox provider).
        """
        public_host = (urlsplit(self.public_url).hostname or "").lower()
        return self.database_url.startswith("sqlite") and self.host in _LOOPBACK and public_host in _LOOPBACK

    def sandbox_enabled(self) -> bool:
        """``TETHER_SANDBOX`` when set, else on exactly for the embedded default."""
        return self.embedded_default() if self.sandbox is None else self.sandbox

    def allowed_return_origins(self) -> list[str]:
        extra = [o.strip() for o in self.allowed_return_origins_list.split(",") if o.strip()]
        return [self.public_url, *extra]

    def mcp_authorization_servers(self) -> list[str]:
        return [s.strip() for s in self.mcp_authorization_servers_list.split(",") if s.strip()]

    def extra_definition_modules(self) -> list[str]:
        """The module entries of ``definition_modules`` (the file entries are ``definition_files``)."""
        return [part for part in self._definition_entries() if not part.endswith(DEFINITION_FILE_SUFFIXES)]

    def definition_files(self) -> list[str]:
        """The file entries of ``definition_modules``, in the order given."""
        return [part for part in self._definition_entries() if part.endswith(DEFINITION_FILE_SUFFIXES)]

    def definition_dirs(self) -> list[str]:
        return [part.strip() for part in self.definitions_dir.split(os.pathsep) if part.strip()]

    def _definition_entries(self) -> list[str]:
        return [part.strip() for part in self.definition_modules.split(",") if part.strip()]

    def extra_model_modules(self) -> list[str]:
        return [part.strip() for part in self.model_modules.split(",") if part.strip()]

    def required_definitions(self) -> list[str]:
        value = self.enabled_definitions.strip()
        if value in ("", "*"):
            return []
        return [part.strip() for part in value.split(",") if part.strip()]


def listening_url(host: str, port: int) -> str:
    """The URL a browser on this machine reaches a server bound to ``host:port`` at."""
    name = host.strip().strip("[]")
    if name in ("", "0.0.0.0", "::"):  # every interface: this machine reaches it on loopback
        name = "127.0.0.1"
    return f"http://{f'[{name}]' if ':' in name else name}:{port}"


@cache
def get_settings() -> Settings:
    return Settings()
