"""The rate governor: one budget per provider app, shared by every worker (issue 22).

Many providers limit an OAuth app across all of its tenants, so workers that each back off only on their own 429s
still hammer the provider together. The governor keeps one token bucket per (definition, operator app, and where
the provider limits that way the external account or the tenant) in Redis, or in process for the embedded default,
split fairly between the tenants that are using it, and learns pauses and rates from the provider's own headers.

The execution path opens a ``governed`` scope around each run; the egress client asks the scope before every
request. A short wait is awaited on the event loop; a longer one defers the run through the queue
(``GovernorDeferred``), so no worker thread ever sleeps on a budget.
"""

from engine.governor.base import Governor, GovernorDeferred
from engine.governor.limits import BucketKey, RateLimit
from engine.governor.memory import LocalGovernor
from engine.governor.scope import governed

__all__ = ["BucketKey", "Governor", "GovernorDeferred", "LocalGovernor", "RateLimit", "governed"]
