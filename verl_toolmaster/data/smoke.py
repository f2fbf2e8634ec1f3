"""A fixed-tool task set for scripted smoke runs of the trainers on CPU (hfcpu server in scripted mode).

Every row asks "What is 2 + 3?" with one sandboxed python tool, ``add``; :data:`SCRIPT` is a trial call, an execute
call and the answer, which the hfcpu server replays for every trajectory (``TOOLMASTER_HFCPU_SCRIPT``), so a GRPO
step runs the real tool, reward and update path whatever the model would sample. Used by the slow end-to-end
tests and ``bench/cpu_training.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..protocol import system_prompt
from .sft import write_rl_parquet
from .task import Task, rl_row

ADD_TOOL = {"type": "function", "function": {"name": "add", "description": "Add two integers.", "parameters": {
    "type": "object", "properties": {"a": {"type": "integer", "description": "first"},
                                     "b": {"type": "integer", "description": "second"}}, "required": ["a", "b"]}}}
SCRIPT = [
    '<trial>Probe add with small numbers.</trial>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 1}}\n'
    "</tool_call><|im_end|>",
    '<execute>Add the two numbers.</execute>\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n'
    "</tool_call><|im_end|>",
    "<answer>5</answer><|im_end|>",
]


def add_tasks(n: int) -> list[Task]:
    """``n`` identical add tasks (ids ``add-0`` ...)."""
    return [Task(id=f"add-{i}", source="toolhop", query="What is 2 + 3? Use the tools.",
                 env={"kind": "python", "tools": [ADD_TOOL], "code": {"add": "def add(a, b):\n    return a + b\n"}},
                 ground_truth={"answer": "5", "answer_type": "number", "sub_answers": {}}) for i in range(n)]


def write_smoke_run(out_dir: Path, n: int) -> tuple[Path, Path]:
    """Write ``n`` RL rows (trial mode on) and the server script into ``out_dir``: (rows parquet, script json)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data, script = out_dir / "add.parquet", out_dir / "script.json"
    write_rl_parquet([rl_row(t, i, system_prompt("on")) for i, t in enumerate(add_tasks(n))], data)
    script.write_text(json.dumps({"turns": SCRIPT}))
    return data, script
