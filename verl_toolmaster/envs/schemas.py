"""Tool-schema helpers shared by the environments: OpenAI tool shape and argument validation.

Data adapters write OpenAI function tools (JSON Schema parameters). The helpers here accept the bare form
(``{"name", "description", "parameters"}``) too, and BFCL's type names (``dict``, ``float``, ``tuple``,
``any``), so an environment never fails on notation alone.
"""

from __future__ import annotations

import copy
from typing import Any

# BFCL / Python notation -> JSON Schema. Anything already JSON Schema passes through unchanged.
_TYPE_ALIASES = {"dict": "object", "float": "number", "tuple": "array", "list": "array", "str": "string", "int": "integer", "bool": "boolean"}


def as_openai_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}`` from either that form or a bare function doc."""
    if not isinstance(tool, dict):
        raise ValueError(f"a tool schema must be an object, got {type(tool).__name__}")
    fn = tool.get("function") if tool.get("type") == "function" else tool
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ValueError(f"tool schema without a name: {str(tool)[:200]}")
    params = fn.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise ValueError(f"tool {fn['name']!r}: 'parameters' must be an object, got {type(params).__name__}")
    return {"type": "function", "function": fn}


def tool_map(tools: list[dict[str, Any]], where: str) -> dict[str, dict[str, Any]]:
    """name -> OpenAI tool, refusing duplicates (``where`` names the task in the error)."""
    if not isinstance(tools, list):
        raise ValueError(f"{where}: 'tools' must be a list of tool schemas, got {type(tools).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for t in tools:
        tool = as_openai_tool(t)
        name = tool["function"]["name"]
        if name in out:
            raise ValueError(f"{where}: tool {name!r} is defined twice")
        out[name] = tool
    return out


def json_schema(parameters: dict[str, Any] | None, strict_properties: bool = True) -> dict[str, Any]:
    """A JSON Schema for a tool's arguments: BFCL type names translated, and (``strict_properties``)
    ``additionalProperties: false`` on objects that list their properties without saying otherwise."""
    schema = copy.deepcopy(parameters) if parameters else {"type": "object", "properties": {}}
    _normalise(schema, strict_properties)
    if "type" not in schema:
        schema["type"] = "object"
    return schema


def _normalise(node: Any, strict: bool) -> None:
    if isinstance(node, list):
        for x in node:
            _normalise(x, strict)
        return
    if not isinstance(node, dict):
        return
    t = node.get("type")
    if isinstance(t, str):
        if t == "any":
            del node["type"]
        elif t in _TYPE_ALIASES:
            node["type"] = _TYPE_ALIASES[t]
    elif isinstance(t, list):
        node["type"] = [_TYPE_ALIASES.get(x, x) for x in t if x != "any"] or None
        if node["type"] is None:
            del node["type"]
    if node.get("type") == "object" and isinstance(node.get("properties"), dict) and strict:
        node.setdefault("additionalProperties", False)
    for key in ("properties", "patternProperties", "$defs", "definitions"):
        if isinstance(node.get(key), dict):
            for sub in node[key].values():
                _normalise(sub, strict)
    for key in ("items", "additionalProperties", "not", "contains"):
        if isinstance(node.get(key), (dict, list)):
            _normalise(node[key], strict)
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(node.get(key), list):
            _normalise(node[key], strict)
