"""The names of the standard suite's checks (``engine.testing.suite``), which a definition may skip with a reason
(``Definition.standard_suite_skips``). Kept apart from the suite so the authoring API and the registry can name
them without importing the engine the suite runs."""

from __future__ import annotations

STANDARD_SUITE_CHECKS: dict[str, str] = {
    "health.passes": "the health check passes on the recorded answers",
    "health.unauthorized": "a 401 moves the integration to reconnect_required",
    "auth.refreshes": "an expired OAuth 2.0 token is refreshed once, stored, and used",
    "rate_limit.retry_after": "a 429 defers the run by the provider's Retry-After",
    "ingest.pages_to_end": "an ingest run requests every recorded page",
    "ingest.repeated_cursor": "a repeated cursor stops the run's paging",
    "ingest.resumes": "a run after one that saved a cursor starts from it",
    "ingest.maps_records": "every recorded record is mapped without a reject",
    "webhook.verifies": "a signed example delivery is accepted",
    "webhook.refuses_tampered": "a tampered delivery is refused",
    "disconnect.revokes": "disconnect revokes at the provider or declares why not",
    "secrets.not_logged": "no secret in a log record, a request URL or a run error",
    "secrets.cassette_scrubbed": "the cassettes hold no credential",
}
