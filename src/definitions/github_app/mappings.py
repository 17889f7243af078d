"""Mappings: how a GitHub repository (from the sync or a webhook) becomes an ``asset`` row.

The same mapping serves both sources because both carry GitHub's repository object. Fields GitHub may send as
``null`` or leave out of older webhook payloads are guarded with ``has()`` and conditionals.
"""

from __future__ import annotations

from engine import Mapping

REPOSITORY = Mapping(
    schema="asset",
    variant="repository",
    # Keep every repository except the one in a `repository` webhook with action "deleted": upserting it would
    # make a deleted repository look current. Its row is left for the next full RepositorySync to settle.
    filter='action != "deleted"',
    map="""
    {
      "source_identifier": payload.node_id,
      "name": payload.full_name,
      "asset_type": "repository",
      "description": has(payload.description) ? payload.description : null,
      "url": payload.html_url,
      "owner": payload.owner.login,
      "visibility": has(payload.visibility) ? payload.visibility : (payload.private ? "private" : "public"),
      "archived": has(payload.archived) ? payload.archived : null,
      "source_updated_at": has(payload.updated_at) ? payload.updated_at : null
    }
    """,
)
