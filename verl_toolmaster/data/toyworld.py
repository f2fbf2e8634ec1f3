"""ToyWorld's dataset adapter: reads the task files the ToyWorld generator writes (docs/toyworld.md).

``prepare.py --dataset toyworld --input DIR/tasks_test.jsonl`` turns them into RL rows. The world, its generator and
the experiment live in :mod:`verl_toolmaster.toyworld` (above this layer); this module only reads their records.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from ..envs.toyworld import ToyWorldEnv
from .base import Adapter, RawRecord, files_in, iter_jsonl, register_adapter, require_keys
from .task import Task

SOURCE = "toyworld"


@register_adapter("toyworld")
class ToyWorldAdapter(Adapter):
    """Reads the task files the generator writes (``tasks_<split>.jsonl``: one Task record per line)."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("tasks_*.jsonl",), "ToyWorld tasks_*.jsonl"):
            yield from iter_jsonl(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("id", "source", "query", "env", "ground_truth", "gold", "gold_answers"))
        if d["source"] != SOURCE:
            raise record.invalid("bad_source", f"source must be {SOURCE!r}, got {d['source']!r}")
        env = d["env"]
        if not isinstance(env, dict) or env.get("kind") != "toyworld":
            raise record.invalid("bad_env", "env must be a toyworld spec ({'kind': 'toyworld', 'tools': [...], 'impl': {...}})")
        try:
            ToyWorldEnv(env)
        except ValueError as e:
            raise record.invalid("bad_env", str(e)) from None
        gt = d["ground_truth"]
        if not isinstance(gt, dict) or not isinstance(gt.get("answer"), str):
            raise record.invalid("bad_ground_truth", "ground_truth must be an object with an 'answer' string")
        try:
            return Task.from_dict(d)
        except TypeError as e:
            raise record.invalid("bad_field", str(e)) from None

