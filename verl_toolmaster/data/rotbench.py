"""RoTBench (``First_Turn``/``Third_Turn`` x clean/slight/medium/heavy/union) -> schema-env tasks whose ground
truth is the set of acceptable next calls, parsed from the benchmark's ReAct gold strings."""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import Adapter, InputError, RawRecord, files_in, iter_json_array, register_adapter, require_keys
from ..protocol.messages import tool_call
from .repairs import add_repair
from .schemas import function_tool, relax_for_gold
from .toolrl_format import repeated_names
from .task import Task

SOURCE = "rotbench"
TURN_DIRS = {"First_Turn": "first", "Third_Turn": "third"}
_TOOLS_MARKER = "following tools:"
_ACTION = re.compile(r"Action:\s*(.*?)\s*\n\s*Action Input:\s*(.*)\Z", re.S)


class ReActError(ValueError):
    pass


def parse_react(text: str) -> tuple[str, dict[str, Any]]:
    """``(thought, {"name", "arguments"})`` of a ``Thought:/Action:/Action Input:`` string."""
    m = _ACTION.search(text)
    if not m:
        raise ReActError(f"no 'Action:/Action Input:' in {text[:120]!r}")
    thought = text[: m.start()].strip()
    thought = thought[len("Thought:") :].strip() if thought.startswith("Thought:") else thought
    name, raw = m.group(1).strip(), m.group(2).strip()
    if not name:
        raise ReActError(f"empty Action in {text[:120]!r}")
    if raw in ("", "{}"):
        return thought, {"name": name, "arguments": {}}
    try:
        args = json.loads(raw)
    except json.JSONDecodeError:
        try:
            args = ast.literal_eval(raw)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ReActError(f"Action Input of {name!r} is neither JSON nor a Python literal: {raw[:120]!r}") from None
    if not isinstance(args, dict):
        raise ReActError(f"Action Input of {name!r} is a {type(args).__name__}, expected an object")
    return thought, {"name": name, "arguments": args}


def parse_tool_list(system: str) -> list[dict[str, Any]]:
    """The JSON tool list embedded in RoTBench's system prompt."""
    at = system.find(_TOOLS_MARKER)
    start = system.find("[", at) if at >= 0 else -1
    if start < 0:
        raise ValueError("no tool list after 'following tools:' in the system prompt")
    try:
        tools, _ = json.JSONDecoder().raw_decode(system, start)
    except json.JSONDecodeError as e:
        raise ValueError(f"the tool list in the system prompt is not JSON: {e.msg}") from None
    if not isinstance(tools, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tools):
        raise ValueError("the tool list is not a list of {name, description, parameters}")
    return [function_tool(t["name"], t.get("description", ""), t.get("parameters") or {"type": "object", "properties": {}}) for t in tools]


def turn_of(path: Path) -> str:
    for part in reversed(path.parts[:-1]):
        if part in TURN_DIRS:
            return TURN_DIRS[part]
    raise InputError(f"{path}: cannot tell first from third turn; keep the file under First_Turn/ or Third_Turn/")


@register_adapter("rotbench")
class RoTBenchAdapter(Adapter):
    """Reads ``First_Turn/*.json`` and ``Third_Turn/*.json`` (the level is the file name)."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        if path.is_dir() and path.name in TURN_DIRS:
            patterns: tuple[str, ...] = ("*.json",)
        else:
            patterns = tuple(f"{d}/*.json" for d in TURN_DIRS) + tuple(f"**/{d}/*.json" for d in TURN_DIRS)
        for f in files_in(path, patterns, "RoTBench"):
            turn_of(f)  # fail early on a file whose turn cannot be known
            yield from iter_json_array(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("conversations",))
        conv = d["conversations"]
        if not isinstance(conv, list) or len(conv) < 3 or not all(isinstance(c, dict) and "from" in c and "value" in c for c in conv):
            raise record.invalid("bad_conversations", "'conversations' must be [system, user, ..., assistant] entries with 'from' and 'value'")
        roles = [c["from"] for c in conv]
        if roles[0] != "system" or roles[1] != "user" or roles[-1] != "assistant":
            raise record.invalid("bad_conversations", f"roles are {roles}; expected system, user, ..., assistant")
        try:
            tools = parse_tool_list(conv[0]["value"])
        except ValueError as e:
            raise record.invalid("bad_tool_list", str(e)) from None
        env: dict[str, Any] = {"kind": "schema", "tools": tools}
        tags: dict[str, Any] = {}
        for t in tools:  # heavy noise lists some required parameters twice, which is not valid JSON Schema
            params = t["function"]["parameters"]
            required = params.get("required")
            if isinstance(required, list) and len(set(map(str, required))) != len(required):
                params["required"] = list(dict.fromkeys(required))
                add_repair(tags, "schema_repaired", f"{t['function']['name']}: required list {required} without repeats")
        for name in repeated_names(tools):  # e.g. two different tools named "drivers": shown as RoTBench shows them
            env["same_name_tools"] = True
            add_repair(tags, "duplicate_tool_kept", f"{sum(t['function']['name'] == name for t in tools)} different tools named {name!r}")

        query = re.sub(r"\s*Begin!\s*$", "", str(conv[1]["value"])).strip()
        trailing: list[dict[str, Any]] = []
        for i, c in enumerate(conv[2:-1], start=2):
            if c["from"] == "assistant":
                try:
                    thought, call = parse_react(str(c["value"]))
                except ReActError as e:
                    raise record.invalid("bad_history", f"conversations[{i}]: {e}") from None
                trailing.append({"role": "assistant", "content": thought, "tool_calls": [tool_call(call["name"], call["arguments"])]})
            elif c["from"] == "function":
                trailing.append({"role": "tool", "content": str(c["value"])})
            elif c["from"] == "user":
                trailing.append({"role": "user", "content": str(c["value"])})
            else:
                raise record.invalid("bad_history", f"conversations[{i}] has unknown role {c['from']!r}")

        gold_texts = conv[-1]["value"]
        gold_texts = gold_texts if isinstance(gold_texts, list) else [gold_texts]
        alternatives = []
        for j, text in enumerate(gold_texts):
            try:
                alternatives.append([parse_react(str(text))[1]])
            except ReActError as e:
                raise record.invalid("bad_gold", f"gold alternative {j}: {e}") from None
        if not alternatives:
            raise record.invalid("bad_gold", "no gold alternative")

        # RoTBench scores the calls by name and keys against the gold; where its noised documentation disagrees with
        # the gold (a parameter documented as "code:" while the gold passes "code"), the gold stays and only that
        # constraint is relaxed for the row, so the call the benchmark counts as correct is one the env accepts.
        try:
            env["tools"], coerced, relaxed = relax_for_gold([c for alt in alternatives for c in alt], env["tools"])
        except ValueError as e:
            raise record.skip("gold_call_violates_schema", str(e)) from None
        for line in relaxed:
            add_repair(tags, "gold_schema_relaxed", line)

        turn, level = turn_of(record.file), record.file.stem
        return Task(
            id=f"rotbench-{turn}-{level}-{record.row}",
            source=SOURCE,
            query=query,
            trailing=trailing,
            env=env,
            ground_truth={"alternatives": alternatives, "level": level, "turn": turn},
            gold=[[coerced[: len(alternatives[0])]]],  # the first alternative, as a schema-following model writes it
            tags={"level": level, "turn": turn, "scenario": d.get("scenario"), **tags},
        )
