"""Google Workspace: users, groups and memberships from the Admin SDK Directory API. Start at ``definition.py``.

Modules, one concept each: ``config`` (the OAuth client and what a tenant tells us), ``slots`` (what is
stored), ``rest`` (Google's errors and ``pageToken`` pagination), ``client`` (bearer tokens and the
service-account JWT), ``operations``, ``connections`` and ``mappings``.
"""

from definitions.google_workspace.definition import definition

__all__ = ["definition"]
