"""The webhook suite's fixtures, for the delivery trace (``test_traces``)."""

from webhooks.conftest import app_for, sqlite_setup  # noqa: F401 (fixtures re-exported)
