"""Repairs: defects of a benchmark record that conversion fixes instead of dropping the record.

Every repair is flagged in the row (``tags["repairs"]``: a list of ``{"kind", "detail"}``) and counted by kind in
``prepare.py``'s summary line, so a score over the converted file covers every record of the benchmark and a
reader can still see which rows differ from what the benchmark shipped. Kinds (docs/data.md, "Repairs"):
"""

from __future__ import annotations

from typing import Any

REPAIRS_TAG = "repairs"

# kind -> what was done (the docs table is written from these)
REPAIR_KINDS = {
    "gold_schema_relaxed": "a gold call breaks its documented tool schema; that tool's validation is relaxed for this row "
    "(extra parameter allowed, type or enum constraint dropped, or requirement dropped) so the gold stays valid",
    "gold_tool_unlisted": "a gold call names a tool the task's list omits (API-Bank level 2, ToolRL); the environment "
    "accepts calls to it without listing it, so the record is scored by name and parameters as the benchmark does",
    "schema_repaired": "a tool schema that is not valid JSON Schema is made valid without changing what it allows "
    "(RoTBench heavy noise: a parameter listed twice in 'required')",
    "duplicate_tool_renamed": "ToolHop: two different tools share a name; every later one gets a numbered name "
    "(<name>_2, ...) in its schema, its code and the gold calls",
    "duplicate_tool_kept": "two different tools are listed under one name and scored by name (RoTBench, API-Bank, "
    "ToolRL); both stay listed as the benchmark shows them and a call is valid when either schema accepts it",
    "tool_name_deduplicated": "StableToolBench: ToolBench's 64-character shortening gives two APIs one name; the later "
    "one gets a hash-prefixed name so every function name is unique",
}


def add_repair(tags: dict[str, Any], kind: str, detail: str) -> None:
    """Record one repair of ``kind`` in a task's tags."""
    if kind not in REPAIR_KINDS:
        raise ValueError(f"unknown repair kind {kind!r}; known: {sorted(REPAIR_KINDS)}")
    tags.setdefault(REPAIRS_TAG, []).append({"kind": kind, "detail": detail})


def repair_kinds(tags: dict[str, Any]) -> list[str]:
    """The kinds of the repairs recorded in ``tags`` (one entry per repair)."""
    return [r["kind"] for r in tags.get(REPAIRS_TAG, [])]
