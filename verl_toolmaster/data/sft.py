"""Plain gold-trace SFT rows (verl ``MultiTurnSFTDataset`` layout) and the parquet writers for RL and SFT rows.

An SFT row is built only from what the benchmark (or its real environment) provides; nothing is invented:

* a trace whose only gold step is the target (API-Bank, ToolRL, RoTBench, BFCL single-turn) ends with the
  assistant's tool-call message: no observation is needed because nothing follows it;
* a reply with no call (ToolRL ``<response>``) ends with that text as the ``<answer>``;
* a multi-step trace (ToolHop) needs every call's observation; the caller obtains them by replaying the gold calls
  in the task's environment (:func:`replay_observations`) and the final ``<answer>`` is the gold answer;
* anything else (BFCL multi-turn: no gold reply per turn; StableToolBench: no gold trace) has no SFT row.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..protocol.messages import decode_messages, encode_messages, tool_call
from .repairs import repair_kinds
from .task import Task

SFT_FORMATS = ("json-tools", "nested")


class SFTUnavailable(Exception):
    """The task has no SFT row; ``reason`` is a short key counted in the summary."""

    def __init__(self, reason: str, detail: str):
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


def _answer_message(text: str) -> dict[str, Any]:
    from verl_toolmaster.protocol import assistant_message

    return assistant_message("answer", text)


def _call_message(calls: list[dict[str, Any]]) -> dict[str, Any]:
    return {"role": "assistant", "content": "", "tool_calls": [tool_call(c["name"], c["arguments"]) for c in calls]}


def check_sft(task: Task) -> None:
    """Raise :class:`SFTUnavailable` with the reason when ``task``'s structure rules out a plain gold-trace row."""
    if task.gold is None:
        raise SFTUnavailable("no_gold_trace", "the benchmark gives no gold trace for this task")
    if task.env.get("turn_tools"):
        raise SFTUnavailable("late_tools", "tools revealed at later turns cannot be expressed in one SFT tools list")
    if "gold_tool_unlisted" in repair_kinds(task.tags):
        # kept for scoring as the benchmark does; as training data it would teach calling a tool nobody offered
        raise SFTUnavailable("gold_tool_unlisted", "the gold calls a tool the task's list omits")
    n_turns = 1 + len(task.follow_up)
    if len(task.gold) > n_turns:
        raise SFTUnavailable("bad_gold_trace", f"gold trace has {len(task.gold)} turns but the task has {n_turns}")
    answers = task.gold_answers or []
    next_action = _is_next_action(task)
    for t in range(n_turns):
        if (t >= len(answers) or answers[t] is None) and not next_action:
            raise SFTUnavailable("no_gold_reply", f"turn {t}: the benchmark gives no gold reply to end the turn")


def _is_next_action(task: Task) -> bool:
    """The benchmark's gold is one next action (one turn, one step): that call is the row's last message."""
    gold = task.gold or []
    return not task.follow_up and len(gold) == 1 and len(gold[0]) == 1 and not (task.gold_answers or [None])[0]


def sft_messages(task: Task, system_prompt: str, observations: list[list[list[str]]] | None = None) -> list[dict[str, Any]]:
    """The chat messages of ``task``'s gold trace (tool-call arguments as dicts).

    ``observations`` mirrors ``task.gold`` (turn -> step -> call) with each call's observation text; it is
    required whenever a call is followed by anything else (see :func:`check_sft`).
    """
    check_sft(task)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system_prompt}, *task.context, {"role": "user", "content": task.query}, *task.trailing]
    gold = task.gold or []
    answers = task.gold_answers or []
    n_turns = 1 + len(task.follow_up)
    next_action = _is_next_action(task)
    for t in range(n_turns):
        steps = gold[t] if t < len(gold) else []
        for s, step in enumerate(steps):
            messages.append(_call_message(step))
            if next_action:
                break
            try:
                texts = observations[t][s] if observations is not None else None
            except IndexError:
                texts = None
            if texts is None or len(texts) != len(step):
                raise SFTUnavailable("no_observations", f"turn {t} step {s}: the calls' observations are needed and not available")
            messages.extend({"role": "tool", "content": text} for text in texts)
        else:
            messages.append(_answer_message(answers[t]))
        if t < n_turns - 1:
            messages.append({"role": "user", "content": task.follow_up[t]})
    return messages


def sft_row(task: Task, system_prompt: str, observations: list[list[list[str]]] | None = None) -> dict[str, Any]:
    """An SFT row (in memory: arguments as dicts, tools as objects); see :func:`write_sft_parquet` for storage."""
    return {
        "messages": sft_messages(task, system_prompt, observations),
        "tools": task.env["tools"],
        "data_source": task.source,
        "task_id": task.id,
    }


async def _replay(task: Task) -> list[list[list[str]]]:
    from verl_toolmaster.envs import make_env

    env = make_env(task.env)
    out: list[list[list[str]]] = []
    try:
        for t, steps in enumerate(task.gold or []):
            env.set_turn(t)
            turn_obs = []
            for s, step in enumerate(steps):
                texts = []
                for call in step:
                    obs = await env.call(call["name"], call["arguments"])
                    if not obs.ok:
                        raise SFTUnavailable("gold_call_failed", f"turn {t} step {s}: {call['name']} -> {obs.error_kind}: {obs.text[:200]}")
                    texts.append(obs.text)
                turn_obs.append(texts)
            out.append(turn_obs)
    finally:
        await env.close()
    return out


def replay_observations(task: Task) -> list[list[list[str]]]:
    """Observations of ``task``'s gold calls, obtained by running them in the task's own environment."""
    return asyncio.run(_replay(task))


# ---- parquet ------------------------------------------------------------------------------------------------


def write_rl_parquet(rows: list[dict[str, Any]], path: str | Path) -> None:
    """Write ``rl_row`` dicts; every nested payload is already a JSON string or a uniform struct."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), str(path))


def _storable(row: dict[str, Any], fmt: str) -> dict[str, Any]:
    if fmt == "nested":
        return row
    return {**row, "messages": encode_messages(row["messages"]), "tools": json.dumps(row["tools"], ensure_ascii=False)}


def write_sft_parquet(rows: list[dict[str, Any]], path: str | Path, fmt: str = "json-tools") -> None:
    """Write SFT rows.

    ``json-tools`` (default): ``messages`` are structs with tool-call ``arguments`` as JSON strings and ``tools``
    is a JSON string; load with :class:`verl_toolmaster.data.sft_dataset.ToolSFTDataset` (verl's
    ``MultiTurnSFTDataset`` plus decoding), which hands verl exactly the dict/object form it documents.
    ``nested``: verl's plain layout (argument dicts, nested tools), loadable by ``MultiTurnSFTDataset`` itself. It
    is only exact when all tools (of all rows) share one parameter schema and all calls one argument set: parquet
    unions struct keys over the column, so other tools' keys come back as nulls inside each tool and call. The file is read back and compared, and a
    ``ValueError`` naming the first altered row is raised (and the file removed) when the layout cannot hold it.
    """
    if fmt not in SFT_FORMATS:
        raise ValueError(f"SFT format must be one of {SFT_FORMATS}, got {fmt!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = [_storable(r, fmt) for r in rows]
    hint = "write with the default json-tools format and load it with verl_toolmaster.data.sft_dataset.ToolSFTDataset"
    try:
        table = pa.Table.from_pylist(stored)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
        raise ValueError(f"the nested SFT layout cannot store these rows (mixed value types: {e}); {hint}") from None
    pq.write_table(table, str(path))
    if fmt == "nested":
        back = pq.read_table(str(path)).to_pylist()
        for i, (orig, got) in enumerate(zip(stored, back)):
            # null message fields (a user turn's "tool_calls") are harmless to chat templates; nulls inside tools
            # or call arguments are not
            if decode_messages(got["messages"]) != orig["messages"] or got["tools"] != orig["tools"]:
                path.unlink()
                raise ValueError(
                    f"row {i} ({orig.get('task_id')}) would not read back unchanged from the nested layout (parquet fills "
                    f"other rows' schema keys with nulls); {hint}"
                )


def read_sft_rows(path: str | Path) -> list[dict[str, Any]]:
    """SFT rows of either format, decoded to the in-memory form (argument dicts, tool objects)."""
    rows = pq.read_table(str(path)).to_pylist()
    for r in rows:
        r["messages"] = decode_messages(r["messages"])
        if isinstance(r["tools"], str):
            r["tools"] = json.loads(r["tools"])
    return rows
