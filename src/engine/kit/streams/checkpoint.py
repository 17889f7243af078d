"""A stream's place in a run, saved after every page as the run's ``Checkpoint`` so an interrupted attempt resumes.

It holds the position of the next page, the guards' memory and the incremental value reached so far, and the
incremental value the run started from (``base``): a checkpoint is only resumed by the same stream starting from
the same stored value, so a checkpoint left by an older cursor can never skip records.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

VERSION = 1


@dataclass
class StreamState:
    stream: str
    base: Any
    position: dict[str, Any]
    pages: int = 0
    fetched: int = 0
    seen: list[str] = field(default_factory=list)
    last_page: str | None = None
    #: The highest ``cursorField`` value so far, or the last ``tokenPath`` value.
    high: Any = None

    def dump(self) -> dict[str, Any]:
        return {"v": VERSION, **asdict(self)}

    @classmethod
    def resume(cls, saved: Any, *, stream: str, base: Any) -> StreamState | None:
        """The saved state if it belongs to this stream and base; else ``None`` (start from the first page)."""
        if not isinstance(saved, dict) or saved.get("v") != VERSION:
            return None
        if saved.get("stream") != stream or saved.get("base") != base:
            return None
        try:
            state = cls(**{key: value for key, value in saved.items() if key != "v"})
        except TypeError:
            return None
        if not isinstance(state.position, dict) or not isinstance(state.seen, list):
            return None
        return state
