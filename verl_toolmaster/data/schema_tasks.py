"""The environment and gold of a task whose tools are schemas scored by call matching (API-Bank, ToolRL).

Shared by the adapters of both notations so that their defects are repaired the same way and flagged in the
row (``data/repairs.py``): same-named tools stay listed, a gold call that breaks its documented schema keeps its
record with that constraint relaxed for the row, and a gold call to a tool the list omits is accepted unlisted.
"""

from __future__ import annotations

from typing import Any

from .base import RawRecord
from .repairs import add_repair
from .schemas import function_tool, relax_for_gold
from .toolrl_format import repeated_names


_UNWRITABLE = set('"\\\n')  # characters a tool-call name cannot carry in the Qwen/Hermes format


def unlisted_gold_tools(calls: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools the gold calls but the task does not list, as schemas accepting the gold's parameters (any values).

    The benchmark compares calls by name and parameters and never executes them, so such a record is scored as
    usual: the environment accepts the call without showing the tool (``unlisted_tools``)."""
    listed = {t["function"]["name"] for t in tools}
    params: dict[str, set[str]] = {}
    for c in calls:
        if c["name"] not in listed:
            params.setdefault(c["name"], set()).update(c["arguments"])
    return [
        function_tool(name, "Not in the task's tool list; the benchmark's gold calls it.", {"type": "object", "properties": {p: {} for p in sorted(keys)}, "additionalProperties": True})
        for name, keys in params.items()
    ]


def schema_env_and_gold(
    record: RawRecord,
    tools: list[dict[str, Any]],
    calls: list[dict[str, Any]],
    tags: dict[str, Any],
    unlisted: list[dict[str, Any]] = (),
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """``(env spec, gold calls)`` of a call-matching task; repairs go into ``tags``.

    ``tools`` are shown to the model; ``unlisted`` are callable without being shown (API-Bank's tool-search level:
    the APIs the search returns). The gold is coerced to the schemas (``"104"`` -> 104 for an integer); the ground
    truth keeps the benchmark's values, which the call-matching scorers compare type-tolerantly.
    """
    env: dict[str, Any] = {"kind": "schema", "tools": tools}
    missing = unlisted_gold_tools(calls, [*tools, *unlisted])
    unwritable = sorted(t["function"]["name"] for t in missing if set(t["function"]["name"]) & _UNWRITABLE)
    if unwritable:  # the chat template writes names unescaped: no model can make this call
        raise record.skip("gold_call_unknown_tool", f"gold call(s) name {unwritable}, not in the tool list and not writable as a tool-call name")
    for t in missing:
        add_repair(tags, "gold_tool_unlisted", f"the gold calls {t['function']['name']!r}, which the tool list omits")
    hidden = [*unlisted, *missing]
    for name in repeated_names(tools):
        env["same_name_tools"] = True
        add_repair(tags, "duplicate_tool_kept", f"{sum(t['function']['name'] == name for t in tools)} different tools named {name!r}")
    try:
        relaxed_tools, gold, relaxed = relax_for_gold(calls, [*tools, *hidden])
    except ValueError as e:
        raise record.skip("gold_call_violates_schema", str(e)) from None
    for line in relaxed:
        add_repair(tags, "gold_schema_relaxed", line)
    env["tools"] = relaxed_tools[: len(tools)]
    if hidden:
        env["unlisted_tools"] = relaxed_tools[len(tools) :]
    return env, gold
