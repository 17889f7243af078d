"""Outbound events to the host app, signed the Standard Webhooks way (https://www.standardwebhooks.com).

One concept per module:

- ``outbox``: the event types and ``emit``, the one function every state change calls to write its event into the
  outbox *in its own transaction*, with one delivery row per matching endpoint (fan-out at write time);
- ``endpoints``: the host's registered URLs, their secrets (``whsec_…``, sealed by the key ring, shown once) and
  rotation with an overlap window;
- ``signing``: the three headers of one delivery (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``);
- ``delivery``: a worker's claim with a lease, the attempt through the egress guard, retries with backoff and jitter
  until the retry window closes (``dead``), manual redelivery, and the sweep that queues what is due.

Queue messages carry delivery row IDs only; bodies and secrets stay in the database.
"""
