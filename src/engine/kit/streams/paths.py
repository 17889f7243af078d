"""Reading a declared JSON path (``response_metadata.next_cursor``) from an answer or a record.

Dotted keys, list items by index (``items.0.id``), a leading ``$.`` accepted (JSONPath's root), and a key that holds
a dot (``@odata.nextLink``) read as it stands. Anything missing reads as ``None``: the caller decides whether that
is the end of the stream or a provider fault.
"""

from __future__ import annotations

from typing import Any


def read(document: Any, path: str | None) -> Any:
    if path is None:
        return None
    if path in ("", "$"):
        return document
    if path.startswith("$."):
        path = path[2:]
    if isinstance(document, dict) and path in document:
        return document[path]
    current = document
    for part in path.split("."):
        if isinstance(current, dict):
            current = current.get(part)
        elif isinstance(current, list) and part.isascii() and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            return None
        if current is None:
            return None
    return current
