"""Record/replay cache for any environment kind (spec key ``"cache": {"mode": ..., "path": ...}``).

Modes: ``live`` (pass-through), ``record`` (answer from the cache when the call was seen, otherwise call the
backend and append the observation), ``replay`` (strict: a call that was never recorded is an error
observation naming the call; the backend is never asked). The key is the tool's fingerprint (what backs it
in this task, so equal names of different tasks never collide), its canonical name and canonicalised
arguments, plus the history of earlier calls for stateful kinds. Replayed observations are byte-identical.

Storage is an append-only JSONL file: each record is one ``write`` under an exclusive ``flock``, so many
processes can record into the same file; readers pick up records appended by others on a miss. Transient
failures (``http``, ``timeout``, ``resource``) are never recorded.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from .base import Observation, ToolEnv, decode_arguments, digest
from .wrapper import EnvWrapper

MODES = ("live", "record", "replay")
TRANSIENT = frozenset({"http", "timeout", "resource", "cache_miss"})


class CacheStore:
    """The in-memory index of one cache file, shared by every env of the process that uses the file."""

    def __init__(self, path: Path):
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        self.offset = 0
        self.skipped_lines = 0  # lines that did not parse (reported, never silently used)
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.refresh()

    def refresh(self) -> None:
        """Read records appended since the last read (by this or any other process)."""
        try:
            f = open(self.path, "rb")
        except FileNotFoundError:
            return
        with f:
            fcntl.flock(f, fcntl.LOCK_SH)
            try:
                self._ingest(f)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    def _ingest(self, f) -> None:
        """Parse whole lines from ``self.offset`` on; the caller holds a lock on ``f`` (a torn tail is
        left for the next read). flock conflicts between two descriptors even in one process, so this
        never opens the file itself."""
        with self._lock:
            f.seek(self.offset)
            data = f.read()
            end = data.rfind(b"\n") + 1
            for line in data[:end].splitlines():
                try:
                    rec = json.loads(line)
                    self.records.setdefault(rec["key"], rec)  # first record of a key wins, everywhere
                except (ValueError, KeyError, TypeError):
                    self.skipped_lines += 1
            self.offset += end

    def get(self, key: str) -> dict[str, Any] | None:
        rec = self.records.get(key)
        if rec is None:
            self.refresh()
            rec = self.records.get(key)
        return rec

    def append(self, rec: dict[str, Any]) -> dict[str, Any]:
        """Append ``rec`` unless its key is already there; returns the record that now stands for the key."""
        line = (json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8")
        with open(self.path, "a+b") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                self._ingest(f)  # under the exclusive lock: nobody appends between this check and our write
                existing = self.records.get(rec["key"])
                if existing is not None:
                    return existing
                os.write(f.fileno(), line)  # one write of a whole line, O_APPEND
                self._ingest(f)
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return self.records.get(rec["key"], rec)


_STORES: dict[str, CacheStore] = {}
_STORES_LOCK = threading.Lock()


def get_store(path: str | Path) -> CacheStore:
    key = str(Path(path).resolve())
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None or store.path != Path(key):
            store = _STORES[key] = CacheStore(Path(key))
        return store


class CachedEnv(EnvWrapper):
    """Wraps any environment with record/replay of its observations."""

    def __init__(self, inner: ToolEnv, options: dict[str, Any], _history: list[str] | None = None):
        super().__init__(inner)
        mode = options.get("mode", "live")
        if mode not in MODES:
            raise ValueError(f"cache mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.options = options
        self.store: CacheStore | None = None
        if mode != "live":
            if not options.get("path"):
                raise ValueError(f"cache mode {mode!r} needs a 'path' for its JSONL file")
            self.store = get_store(options["path"])
        self.history: list[str] = list(_history or [])
        self.hits = self.misses = self.recorded = 0

    def key(self, name: str, args: dict[str, Any]) -> str:
        return digest({"fp": self.inner.fingerprint(name), "name": name, "args": args, "history": self.history if self.stateful else None})

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = decode_arguments(name, arguments)
        if self.store is None or err is not None or name not in self.inner.tool_names():
            # pass-through: live mode, or a call the backend never sees (bad JSON, unknown tool)
            return self._finish(await self.inner.call(name, arguments), started)
        key = self.key(name, args)
        rec = self.store.get(key)
        if self.stateful:
            self.history.append(key)
        if rec is not None:
            self.hits += 1
            if self.stateful:
                await self.inner.call(name, args)  # keep the backend's state where the recording had it
            return self._finish(Observation(rec["ok"], rec["text"], rec["error_kind"]), started)
        self.misses += 1
        if self.mode == "replay":
            shown = json.dumps(args, ensure_ascii=False, sort_keys=True)
            return self._finish(Observation(False, f"Error: no recorded observation for {name}({shown}) in {self.store.path} (replay mode).", "cache_miss"), started)
        obs = await self.inner.call(name, args)
        if obs.error_kind not in TRANSIENT:
            rec = self.store.append({"key": key, "kind": self.kind, "name": name, "arguments": args, "ok": obs.ok, "text": obs.text, "error_kind": obs.error_kind})
            self.recorded += 1
            obs = Observation(rec["ok"], rec["text"], rec["error_kind"])  # another writer may have won the key
        return self._finish(obs, started)

    def fork(self) -> "CachedEnv":
        twin = CachedEnv(self.inner.fork(), self.options, _history=self.history)
        twin.turn = self.turn
        return twin
