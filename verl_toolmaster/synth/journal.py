"""Append-only JSONL journal of finished synthesis items, so an interrupted run resumes where it stopped.

One line per finished item: ``{"id", "status": "kept"|"dropped", "reason", "detail", "row": SFT row | null,
"stats"}``. Each line is written whole and flushed (and fsynced) before the next item is started, so a killed run
leaves at most one torn last line; :meth:`Journal.load` cuts it off and reports it. A torn line anywhere else
means the file was edited or corrupted, and is an error naming the line. Items that failed for a transient reason
(endpoint errors) are not journaled: the next run tries them again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL_STATUSES = ("kept", "dropped")


class JournalError(ValueError):
    """The journal file is corrupt (not a torn last line)."""


class Journal:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.repaired = False  # True when load() cut off a torn last line

    def load(self) -> dict[str, dict[str, Any]]:
        """Entries by id (the first entry of an id wins; later duplicates are ignored), repairing a torn tail."""
        if not self.path.exists():
            return {}
        data = self.path.read_bytes()
        lines = data.split(b"\n")
        tail = lines.pop()  # b"" when the file ends with a newline
        entries: dict[str, dict[str, Any]] = {}
        good = 0
        for i, raw in enumerate(lines):
            try:
                entry = json.loads(raw)
                if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or entry.get("status") not in JOURNAL_STATUSES:
                    raise ValueError("not a journal entry")
            except ValueError as e:  # a torn write never ends with its newline, so this line was damaged otherwise
                raise JournalError(f"{self.path}, line {i + 1}: {e}") from None
            entries.setdefault(entry["id"], entry)
            good += len(raw) + 1
        if tail:
            self._truncate(good)
        return entries

    def _truncate(self, size: int) -> None:
        with open(self.path, "r+b") as f:
            f.truncate(size)
        self.repaired = True

    def append(self, entry: dict[str, Any]) -> None:
        if entry.get("status") not in JOURNAL_STATUSES:
            raise ValueError(f"journal entry status must be one of {JOURNAL_STATUSES}, got {entry.get('status')!r}")
        line = json.dumps(entry, ensure_ascii=False, default=_plain) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())


def _plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # numpy values from parquet rows
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
