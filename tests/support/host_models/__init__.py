"""A host app's own ingest models: the worked example of docs/authoring.md, "Models of your own".

Registered through ``TETHER_MODEL_MODULES=support.host_models`` (or a ``tether.models`` entry point naming this
module). Its tables live in a metadata of their own (``HostModel``'s registry), so Tether's migration checks never see
them and ``tether db revision --models support.host_models`` autogenerates against these tables only. Its revisions
are in ``migrations/`` beside this file, on the Alembic branch ``BRANCH``.
"""

from support.host_models.ticket import HostModel, Ticket

BRANCH = "host_tickets"
MODELS = (Ticket,)

__all__ = ["BRANCH", "MODELS", "HostModel", "Ticket"]
