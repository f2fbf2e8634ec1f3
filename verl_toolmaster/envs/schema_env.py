"""Kind ``schema``: tools without a backend (API-Bank, ToolRL/xLAM, BFCL single-turn, RoTBench).

Spec payload: ``{"kind": "schema", "tools": [OpenAI function schemas]}``. A call is validated with
``jsonschema`` against its tool's parameters (required, types, enums, nested shapes, and no parameters the
schema does not list); every violation is reported with the parameter it concerns. A valid call is
acknowledged as such and nothing else: there is no backend, so no result is invented.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .base import Observation, ToolEnv, register_env
from .schemas import json_schema, tool_map


@register_env("schema")
class SchemaEnv(ToolEnv):
    """Argument validation only."""

    def __init__(self, spec: dict[str, Any]):
        super().__init__(spec)
        from jsonschema import Draft202012Validator
        from jsonschema.exceptions import SchemaError

        self._tools = tool_map(spec.get("tools", []), "schema environment")
        self._validators = {}
        for name, tool in self._tools.items():
            schema = json_schema(tool["function"].get("parameters"))
            try:
                Draft202012Validator.check_schema(schema)
            except SchemaError as e:
                raise ValueError(f"schema environment: tool {name!r} has an invalid parameter schema: {e.message}") from None
            self._validators[name] = Draft202012Validator(schema)

    def tools(self) -> list[dict[str, Any]]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = self._checked(name, arguments, self._tools)
        if err is not None:
            return self._finish(err, started)
        problems = validation_problems(self._validators[name], args)
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
        return validation_problems(self._validators[name], arguments)

    def fork(self) -> "SchemaEnv":
        twin = SchemaEnv.__new__(SchemaEnv)
        ToolEnv.__init__(twin, self.spec)
        twin._tools, twin._validators, twin.turn = self._tools, self._validators, self.turn
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
