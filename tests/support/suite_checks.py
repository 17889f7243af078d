"""The standard suite's checks a definition that calls its provider passes (``ok``, not skipped) once recorded:
what the scaffold's skeletons and the worked Asana example are held to."""

CALLED_PROVIDER_CHECKS = frozenset(
    {
        "health.passes",
        "health.unauthorized",
        "ingest.pages_to_end",
        "ingest.maps_records",
        "ingest.repeated_cursor",
        "rate_limit.retry_after",
        "disconnect.revokes",
        "secrets.not_logged",
    }
)
