"""Kind ``schema``: tools without a backend (API-Bank, ToolRL/xLAM, BFCL single-turn, RoTBench).

Spec payload: ``{"kind": "schema", "tools": [OpenAI function schemas], "same_name_tools": false}``. A call is
validated with ``jsonschema`` against its tool's parameters (required, types, enums, nested shapes, and no
parameters the schema does not list); every violation is reported with the parameter it concerns. A valid call is
acknowledged as such and nothing else: there is no backend, so no result is invented.

``same_name_tools: true`` (set by adapters of benchmarks that list two different tools under one name and score
calls by name, e.g. RoTBench's two ``drivers``): all tools stay listed as the benchmark shows them, and a call to
the name is valid when any of its schemas accepts it (otherwise the problems of the closest one are reported).
Without it a repeated name is an error.

``unlisted_tools: [OpenAI function schemas]``: tools a call may use although ``tools()`` does not list them. API-Bank's
level-2 records sometimes have a gold call to an API that the tool search shown in the dialogue did not return;
its evaluation compares the call by name and parameters, so the call must be possible without the tool being shown.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .base import Observation, ToolEnv, register_env
from .schemas import as_openai_tool, json_schema, tool_map


@register_env("schema")
class SchemaEnv(ToolEnv):
    """Argument validation only."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        tools = spec.get("tools", [])
        if spec.get("same_name_tools"):
            self._listed = [as_openai_tool(t) for t in tools]
            self._tools = {t["function"]["name"]: t for t in reversed(self._listed)}  # first listed wins the lookup
        else:
            self._tools = tool_map(tools, "schema environment")
            self._listed = list(self._tools.values())
        self._unlisted = tool_map(spec.get("unlisted_tools", []), "schema environment, unlisted_tools")
        clash = sorted(set(self._unlisted) & set(self._tools))
        if clash:
            raise ValueError(f"schema environment: unlisted tool(s) {clash} are also listed")
        self._validators: dict[str, list[Any]] = {}
        for tool in [*self._listed, *self._unlisted.values()]:
            name = tool["function"]["name"]
            schema = json_schema(tool["function"].get("parameters"))
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as e:
                raise ValueError(f"schema environment: tool {name!r} has an invalid parameter schema: {e.message}") from None
            self._validators.setdefault(name, []).append(Draft202012Validator(schema))

    def tools(self) -> list[dict[str, Any]]:
        return list(self._listed)

    def callable_names(self) -> list[str]:
        return [*self.tool_names(), *self._unlisted]

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = self._checked(name, arguments, self._validators)
        if err is not None:
            return self._finish(err, started)
        problems = self.problems(name, args)
        if problems:
            text = f"Error: invalid arguments for {name!r}:\n" + "\n".join(f"- {p}" for p in problems)
            return self._finish(Observation(False, text, "schema"), started)
        shown = json.dumps(args, ensure_ascii=False, sort_keys=True)
        text = f"Call accepted: {name}({shown}) matches the tool's schema. This tool has no executable backend here, so no result data is returned."
        return self._finish(Observation(True, text), started)

    def problems(self, name: str, arguments: dict[str, Any]) -> list[str]:
        """What is wrong with a call to the task's tool ``name`` (empty when the call would be accepted)."""
        if name not in self._validators:
            return [f"unknown tool {name!r}"]
        found = [validation_problems(v, arguments) for v in self._validators[name]]
        return min(found, key=len)  # a same-named tool that accepts the call gives []

    def fork(self) -> "SchemaEnv":
        twin = SchemaEnv.__new__(SchemaEnv)
        ToolEnv.__init__(twin, self.spec)
        twin._tools, twin._listed, twin._unlisted, twin._validators = self._tools, self._listed, self._unlisted, self._validators
        twin.turn = self.turn
        return twin


def validation_problems(validator: Any, args: dict[str, Any]) -> list[str]:
    """One line per violation, naming the parameter path, sorted so the feedback is deterministic."""
    out = []
    for e in validator.iter_errors(args):
        out.append(_describe(e))
    return sorted(set(out))


def _describe(e: Any) -> str:
    where = "".join(f"[{p!r}]" if isinstance(p, int) else ("." if i else "") + str(p) for i, p in enumerate(e.absolute_path))
    param = f"parameter {where!r}" if where else "arguments"
    v = e.validator
    if v == "required":
        missing = [r for r in e.validator_value if isinstance(e.instance, dict) and r not in e.instance]
        prefix = f"{where}." if where else ""
        return f"missing required parameter{'s' if len(missing) > 1 else ''} {', '.join(repr(prefix + m) for m in missing)}"
    if v == "additionalProperties":
        allowed = sorted((e.schema.get("properties") or {}).keys())
        extra = sorted(k for k in e.instance if k not in (e.schema.get("properties") or {}))
        return f"unexpected parameter{'s' if len(extra) > 1 else ''} {', '.join(map(repr, extra))}" + (f" in {where!r}" if where else "") + f" (allowed: {', '.join(allowed) or 'none'})"
    if v == "type":
        expected = e.validator_value if isinstance(e.validator_value, str) else " or ".join(e.validator_value)
        return f"{param} must be of type {expected}, got {_json_type(e.instance)} {_short(e.instance)}"
    if v == "enum":
        return f"{param} must be one of {json.dumps(e.validator_value, ensure_ascii=False)}, got {_short(e.instance)}"
    return f"{param}: {e.message}"


def _json_type(x: Any) -> str:
    if isinstance(x, bool):
        return "boolean"
    if isinstance(x, int):
        return "integer"
    if isinstance(x, float):
        return "number"
    if isinstance(x, str):
        return "string"
    if isinstance(x, list):
        return "array"
    if isinstance(x, dict):
        return "object"
    return "null" if x is None else type(x).__name__


def _short(x: Any) -> str:
    s = json.dumps(x, ensure_ascii=False, default=str)
    return s if len(s) <= 80 else s[:77] + "..."
