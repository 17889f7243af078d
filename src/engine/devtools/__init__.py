"""Tools for people writing definitions: ``scaffold`` (``tether definitions new``) and mapping coverage
(``celreads``, ``payloads``, ``coverage``: ``tether mapping coverage``). Nothing here runs in a server."""
