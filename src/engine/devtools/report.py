"""Mapping coverage as text: one table per mapping, then what it reads that never arrives and what it leaves."""

from __future__ import annotations

from engine.devtools.coverage import Coverage, FieldCoverage, MappingCoverage

#: How many unused payload fields are listed per mapping before "… and N more".
UNUSED_SHOWN = 40
_STATUS = {"filled": "filled", "null": "null", "not_written": "not mapped"}


def render(report: Coverage) -> str:
    records = sum(m.records for m in report.mappings)
    lines = [
        f"mapping coverage of {report.definition_id}: {records} record(s) from {len(report.files)} "
        f"{_source(report.source)}"
    ]
    if report.unassigned:
        lines.append(f"  {report.unassigned} record(s) in those answers resemble no mapping (not counted below)")
    for mapping in report.mappings:
        lines += ["", *_mapping(mapping)]
    return "\n".join(lines)


def _source(kind: str) -> str:
    return {"cassettes": "cassette file(s)", "fixtures": "fixture file(s)", "files": "file(s) given"}.get(
        kind, "file(s)"
    )


def _mapping(m: MappingCoverage) -> list[str]:
    name = f"{m.schema}/{m.variant}" if m.variant else m.schema
    head = f"{name}: {m.records} record(s), {m.mapped} mapped, {m.rejected} rejected, {m.filtered} filtered out"
    if m.rejects:
        head += " (" + ", ".join(f"{code}: {n}" for code, n in sorted(m.rejects.items())) + ")"
    lines = [head]
    if not m.records:
        return [*lines, "  no recorded payload for this mapping: record one, or give --payloads"]
    seen = m.records - m.filtered - m.rejects.get("map_error", 0) - m.rejects.get("map_not_object", 0)
    rows = [("model field", "status", "records", "reads (present in records)")]
    rows += [_row(f, seen, m.records) for f in m.fields]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        lines.append("  " + "  ".join(c.ljust(w) for c, w in zip(row[:3], widths, strict=True)) + "  " + row[3])
    if m.unknown_keys:
        lines.append(f"  writes keys the model does not have: {', '.join(m.unknown_keys)}")
    if m.never_present:
        lines.append(f"  read but never present in payloads: {', '.join(m.never_present)}")
    if m.unused:
        shown = [f"{u.path} ({u.present}/{m.records})" for u in m.unused[:UNUSED_SHOWN]]
        more = len(m.unused) - UNUSED_SHOWN
        lines.append(
            "  payload fields no mapping reads: " + ", ".join(shown) + (f", … and {more} more" if more > 0 else "")
        )
    return lines


def _row(f: FieldCoverage, seen: int, total: int) -> tuple[str, str, str, str]:
    status = _STATUS[f.status] + (" (required)" if f.required and f.status != "filled" else "")
    counted = f"{f.filled}/{seen}" if f.status != "not_written" else "-"
    reads = ", ".join(f"{u.path} {u.present}/{total}" + (" never present" if u.present == 0 else "") for u in f.reads)
    return f.field, status, counted, reads or ("-" if f.status != "not_written" else "")
