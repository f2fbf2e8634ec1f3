"""The Task record: what every dataset adapter produces and every stage (SFT, RL, eval) consumes."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ..protocol.messages import encode_messages

AGENT_NAME = "toolmaster_agent"


@dataclass
class Task:
    """One benchmark item, independent of the benchmark's file format."""

    id: str  # unique within its dataset, e.g. "toolhop-001"
    source: str  # data_source; selects the scorer (toolhop, bfcl_single, bfcl_multi, apibank, toolrl, rotbench, stabletoolbench, ...)
    query: str  # the first user message
    env: dict[str, Any]  # environment spec: {"kind": ..., payload}; see verl_toolmaster.envs
    ground_truth: dict[str, Any]  # scorer input, JSON-serialisable, shape defined by the source's scorer
    follow_up: list[str] = field(default_factory=list)  # later user messages of a multi-turn task, in order
    context: list[dict[str, Any]] = field(default_factory=list)  # chat messages before the query (dialogue history)
    # Chat messages after the query that are already part of the prompt: calls made earlier for this request and
    # their recorded observations (RoTBench third turn, ToolRL/API-Bank histories ending in an <obs>).
    trailing: list[dict[str, Any]] = field(default_factory=list)
    # Gold trace, per user turn: a list of steps, each step a list of calls {"name", "arguments"} issued together.
    # None: the benchmark gives no trace; [[]]: the gold is to make no call (answer or decline directly).
    gold: list[list[list[dict[str, Any]]]] | None = None
    gold_answers: list[str] | None = None  # gold final answer text per user turn, when the benchmark has one
    split: str = "all"  # split tag (train/test/...)
    tags: dict[str, Any] = field(default_factory=dict)  # free tags: perturbation level, hop count, domain, ...

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Task":
        return cls(**d)


def rl_row(task: Task, index: int, system_prompt: str, agent_name: str = AGENT_NAME) -> dict[str, Any]:
    """An ``RLHFDataset`` row. Nested payloads are JSON strings so parquet keeps them exact (see verl notes §11).

    Tool calls inside the prompt (dialogue history) carry ``arguments`` as JSON strings for the same reason;
    :func:`verl_toolmaster.protocol.messages.decode_messages` restores dicts before a chat template is applied.
    """
    if not isinstance(system_prompt, str) or not system_prompt.strip():
        raise ValueError("rl_row needs the protocol's system prompt text (verl_toolmaster.protocol.system_prompt)")
    prompt = encode_messages(
        [{"role": "system", "content": system_prompt}, *task.context, {"role": "user", "content": task.query}, *task.trailing]
    )
    return {
        "data_source": task.source,
        "agent_name": agent_name,
        "prompt": prompt,
        "reward_model": {"style": "rule", "ground_truth": json.dumps(task.ground_truth, sort_keys=True)},
        "extra_info": {
            "index": index,
            "task_id": task.id,
            "env": json.dumps(task.env, sort_keys=True),
            "follow_up": json.dumps(task.follow_up),
            "gold": json.dumps(task.gold),
            "gold_answers": json.dumps(task.gold_answers),
            "split": task.split,
            "tags": json.dumps(task.tags, sort_keys=True),
        },
    }
