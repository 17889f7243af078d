"""The sandbox provider: a provider API Tether itself serves under ``/sandbox``, so that the engine's real code paths
(OAuth with PKCE, refresh rotation, revocation, egress, pagination, 429 deferral, webhook verification, ingest) run
end to end on the embedded default. Think Plaid Sandbox or Stripe test mode, not a mock.

On only while ``Settings.sandbox_enabled()`` (the embedded default, or ``TETHER_SANDBOX=1``). The contract with
its definition (``definitions.sandbox``) is ``docs/sandbox.md``. Modules, one concept each: ``tables`` (state, in
the database so workers see it), ``database`` (which database: on SQLite a file of its own), ``seed`` (the
deterministic accounts and records), ``store`` (seeding, keyset pages), ``records`` (the controls' record fields
and changes), ``grants`` (codes, token rotation, revocation), ``auth`` (who calls the API: token or key, armed
failures), ``answers`` (provider-style errors), ``oauth`` (the authorization server and consent page), ``api`` (the
REST API), ``subscriptions`` (webhook subscriptions), ``sender`` (Standard Webhooks deliveries), ``controls``
(scenario controls), ``page`` (``GET /sandbox/``), ``routes`` (the router the API app mounts).
"""
