"""The output directory: ``trajectories.jsonl`` (append-only, the resume state), ``run.json``, ``errors.jsonl``.

A row is done once its line is in ``trajectories.jsonl``; a re-run skips it. Lines are written and flushed
one by one as rows finish, so a killed run loses only the rows in flight. A last line cut by a kill is dropped
on the next start (and reported); any other unreadable line is an error naming it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

TRAJECTORIES = "trajectories.jsonl"
RUN = "run.json"
ERRORS = "errors.jsonl"
METRICS = "metrics.json"
REPORT = "report.html"
# run.json keys that must match for a resumed run to extend the same evaluation.
SIGNATURE_KEYS = ("policy", "model", "tokenizer", "trial_mode", "system_prompt", "sampling", "loop", "reward_kwargs", "lengths")


class StoreError(ValueError):
    """The output directory cannot be resumed (exit code 2)."""


class TrajectoryStore:
    """Reads and appends the run's trajectories."""

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / TRAJECTORIES
        self.done: dict[str, dict[str, Any]] = {}
        self.dropped_partial_line = False
        self._fh: Any = None

    def load(self) -> None:
        if not self.path.is_file():
            return
        raw = self.path.read_bytes()
        lines = raw.split(b"\n")
        tail = lines.pop()  # after the last newline: empty unless the final write was cut
        if tail.strip():
            self.dropped_partial_line = True
            with open(self.path, "r+b") as fh:  # drop the cut line so new lines start clean
                fh.truncate(len(raw) - len(tail))
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                traj = json.loads(line)
            except json.JSONDecodeError as e:
                raise StoreError(f"{self.path}, line {n}: not valid JSON ({e.msg}); fix or remove the line to resume") from None
            if not isinstance(traj, dict) or not isinstance(traj.get("id"), str):
                raise StoreError(f"{self.path}, line {n}: not a trajectory object with an 'id'")
            self.done[traj["id"]] = traj

    def check_run(self, run: dict[str, Any]) -> None:
        """Refuse to resume a directory that holds a run with different settings; write ``run.json``."""
        path = self.out / RUN
        if path.is_file() and self.done:
            try:
                previous = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError) as e:
                raise StoreError(f"{path}: unreadable ({e}); use a new --out directory") from None
            differ = [_difference(k, previous.get(k), run.get(k)) for k in SIGNATURE_KEYS if previous.get(k) != run.get(k)]
            if differ:
                details = "; ".join(differ)
                raise StoreError(f"{self.out} holds a run with other settings ({details}); use a new --out directory to compare runs")
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(path, run)

    def append(self, traj: dict[str, Any]) -> None:
        if self._fh is None:
            self.out.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "a", encoding="utf-8")
        self._fh.write(json.dumps(traj, ensure_ascii=False, default=_plain) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self.done[traj["id"]] = traj

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _difference(key: str, old: Any, new: Any) -> str:
    if isinstance(old, dict) and isinstance(new, dict):
        subs = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        return "; ".join(f"{key}.{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in subs)
    return f"{key}: {old!r} -> {new!r}"


def write_json(path: Path, obj: Any) -> None:
    """Write atomically (temp file + rename), so a reader never sees half a file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False, default=_plain) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def write_errors(out: Path, errors: list[dict[str, Any]]) -> None:
    path = Path(out) / ERRORS
    if not errors:
        path.unlink(missing_ok=True)
        return
    with open(path, "w", encoding="utf-8") as fh:
        for e in errors:
            fh.write(json.dumps(e, ensure_ascii=False, default=_plain) + "\n")


def _plain(obj: Any) -> Any:
    """numpy scalars/arrays (verl hands some values over as numpy) -> JSON values."""
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
