"""Helpers for the reward tests: benchmark tasks through the data adapters, call-log entries, episodes;
scripted token-level trajectories come from :mod:`verl_toolmaster.reward.scripted`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from verl_toolmaster.data import Task, get_adapter
from verl_toolmaster.reward.scorers import Episode
from verl_toolmaster.reward.scripted import Step, Trajectory, build_trajectory, make_batch, obj_array  # noqa: F401

DATASET_FILES = {
    "toolhop": "toolhop/toolhop_dev10.jsonl",
    "bfcl": "bfcl",
    "apibank": "apibank/level-1-api_processed.json",
    "toolrl": "toolrl/rlla_4k_test.parquet",
    "rotbench": "rotbench",
    "stabletoolbench": "stabletoolbench/G1_instruction_dev.json",
}
_TASKS: dict[str, list[Task]] = {}


def load_tasks(shared: Path, dataset: str) -> list[Task]:
    """All convertible tasks of a shared dataset, via the project's adapter (skips are the adapter's business)."""
    if dataset not in _TASKS:
        adapter = get_adapter(dataset)()
        tasks = []
        for record in adapter.records(shared / DATASET_FILES[dataset]):
            try:
                tasks.append(adapter.convert(record))
            except Exception:  # the adapter reports skipped records itself; here we only need the good ones
                continue
        assert tasks, f"no {dataset} task converted"
        _TASKS[dataset] = tasks
    return _TASKS[dataset]


def call(name: str, arguments: Any, phase: str = "execute", turn: int = 0, ok: bool = True, text: str = "ok", error_kind: str | None = None) -> dict[str, Any]:
    """One call-log entry (agent_io.md)."""
    return {"phase": phase, "turn": turn, "name": name, "arguments": arguments, "ok": ok, "error_kind": error_kind, "text": text, "latency_s": 0.0}


def episode(answers: list[str | None], calls: list[dict[str, Any]] | None = None, env: dict | None = None) -> Episode:
    return Episode(answers=answers, calls=calls or [], env_spec=env)


def gold_episode(task: Task) -> Episode:
    """Execute-phase calls of the task's gold trace, one per user turn, plus the gold answers."""
    calls = [call(c["name"], c["arguments"], turn=u) for u, steps in enumerate(task.gold or []) for step in steps for c in step]
    n_turns = max(1, len(task.gold or []))
    answers = list(task.gold_answers) if task.gold_answers else ["done"] * n_turns
    return episode(answers, calls)
