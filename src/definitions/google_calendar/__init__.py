"""Google Calendar. Modules, one concept each: ``oauth`` (generated from ``oauth.toml``), ``models`` (typed
requests and responses), ``api`` (the helpers and Google's errors), ``operations``, ``mappings``, ``definition``.

Server code calls the helpers directly: ``GoogleCalendar(client).get_free_busy(FreeBusyRequest(...))``.
"""

from definitions.google_calendar.api import GoogleCalendar
from definitions.google_calendar.definition import definition

__all__ = ["GoogleCalendar", "definition"]
