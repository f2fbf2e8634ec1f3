"""Tool-schema helpers: OpenAI function tools from the various benchmark notations."""

from __future__ import annotations

import ast
import copy
import json
import re
from typing import Any

# Python/ToolRL-style type names -> JSON Schema types.
_SCALARS = {
    "str": "string",
    "string": "string",
    "text": "string",
    "char": "string",
    "int": "integer",
    "integer": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
    "dict": "object",
    "object": "object",
    "map": "object",
    "null": "null",
    "none": "null",
}
_ARRAYS = {"list", "array", "tuple", "set", "sequence"}
_GENERIC = re.compile(r"^(\w+)\s*[\[(](.*)[\])]$")


def function_tool(name: str, description: str, parameters: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "function", "function": {...}}`` as chat templates and the environments expect."""
    return {"type": "function", "function": {"name": name, "description": description, "parameters": parameters}}


def _split_top_level(s: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if "".join(cur).strip():
        parts.append("".join(cur).strip())
    return parts


def schema_from_type_name(type_name: Any) -> tuple[dict[str, Any], bool]:
    """JSON Schema for a free-form type name (``"str, optional"``, ``"List[int]"``, ``["string", "null"]``).

    Returns ``(schema, optional)``. Names with no JSON equivalent (``Callable[...]``) give an unconstrained
    schema rather than a guess, so validation never rejects a value the benchmark's own tool would accept.
    """
    if isinstance(type_name, list):  # already a JSON Schema type union
        types = [t for t in (schema_from_type_name(t)[0].get("type") for t in type_name) if isinstance(t, str)]
        return ({"type": types} if types else {}), "null" in types
    if not isinstance(type_name, str):
        return {}, False
    text = type_name.strip()
    optional = False
    m = re.match(r"^(.*?),\s*optional$", text, flags=re.IGNORECASE)
    if m:
        text, optional = m.group(1).strip(), True
    m = re.match(r"^Optional\[(.*)\]$", text)
    if m:
        text, optional = m.group(1).strip(), True
    if text.startswith("[") and text.endswith("]"):  # "['string', 'null']"
        names = [p.strip().strip("'\"") for p in text[1:-1].split(",") if p.strip()]
        schema, _ = schema_from_type_name(names)
        return schema, optional or "null" in names
    low = text.lower()
    if low in _SCALARS:
        return {"type": _SCALARS[low]}, optional
    if low in _ARRAYS:
        return {"type": "array"}, optional
    g = _GENERIC.match(text)
    if g:
        outer, inner = g.group(1).lower(), g.group(2)
        args = _split_top_level(inner)
        if outer in _ARRAYS:
            if outer == "tuple" or len(args) != 1:
                return {"type": "array"}, optional
            item, _ = schema_from_type_name(args[0])
            return ({"type": "array", "items": item} if item else {"type": "array"}), optional
        if outer in ("dict", "map", "mapping"):
            return {"type": "object"}, optional
        if outer == "union":
            types = [schema_from_type_name(a)[0].get("type") for a in args]
            flat = [t for t in types if isinstance(t, str)]
            if len(flat) == len(types):
                return {"type": sorted(set(flat), key=flat.index)}, optional or "null" in flat
            return {}, optional
    return {}, optional  # Callable[...], custom classes, free text: no constraint


def cast_bfcl_schema(schema: dict[str, Any], type_map: dict[str, str], nested: bool = False) -> dict[str, Any]:
    """Copy of a BFCL parameter schema as JSON Schema that accepts what bfcl-eval's AST checker accepts.

    * BFCL type names (``dict``, ``float``, ``tuple``...) are mapped through ``type_map`` (bfcl-eval's
      ``GORILLA_TO_OPENAPI``); unknown or missing types become ``string`` as bfcl-eval does for OpenAI-style models.
    * An ``enum`` on an array lists the allowed items (BFCL writes it beside ``items``), so it moves into ``items``.
    * Nested objects stay open (``additionalProperties: true``): bfcl-eval compares nested keys with the possible
      answer only, and some docs list placeholder keys ("param1 ... Replace with actual parameter names"). The
      top level stays closed, as the checker rejects parameters the function does not have.
    """
    out = dict(schema)
    t = out.get("type")
    out["type"] = type_map.get(t, "string") if isinstance(t, str) else "string"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: cast_bfcl_schema(v, type_map, True) for k, v in out["properties"].items() if isinstance(v, dict)}
        if nested and out["type"] == "object":
            out.setdefault("additionalProperties", True)
    if isinstance(out.get("items"), dict):
        out["items"] = cast_bfcl_schema(out["items"], type_map, True)
    if out["type"] == "array" and "enum" in out:
        items = out.get("items") if isinstance(out.get("items"), dict) else {}
        enum = out.pop("enum")
        out["items"] = items if "enum" in items else {**items, "enum": enum}
    return out


_INT = re.compile(r"[+-]?\d+")


def coerce_value(value: Any, schema: dict[str, Any]) -> Any:
    """``value`` converted to the schema's declared type when it is a string spelling of exactly that type
    ("104" for an integer, "true" for a boolean, a JSON list for an array); anything else is returned unchanged."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if kind == "integer" and isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, str) or not isinstance(kind, str):
        return value
    text = value.strip()
    if kind == "integer" and _INT.fullmatch(text):
        return int(text)
    if kind == "number":
        if _INT.fullmatch(text):
            return int(text)
        try:
            number = float(text)
        except ValueError:
            return value
        return number if number == number and abs(number) != float("inf") else value
    if kind == "boolean" and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if kind in ("array", "object"):
        for parse in (json.loads, ast.literal_eval):  # JSON, or a Python literal as the benchmarks often write
            try:
                parsed = parse(text)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                continue
            if isinstance(parsed, list if kind == "array" else dict):
                return parsed
        return value
    return value


def coerce_call(call: dict[str, Any], tools: list[dict[str, Any]]) -> dict[str, Any]:
    """A gold call as a model following the tool's schema would write it (see :func:`coerce_value`).

    Benchmarks such as API-Bank and ToolRL spell numbers and booleans as strings in their gold calls, which their
    own schemas reject; the ground truth keeps the benchmark's values (the call-matching scorer compares values
    type-tolerantly), while the gold trace that is replayed, synthesized and trained on follows the schema."""
    params = next((((t.get("function") or t).get("parameters") or {}).get("properties") or {}
                   for t in tools if (t.get("function") or t).get("name") == call["name"]), {})
    args = call.get("arguments")
    if not isinstance(args, dict) or not params:
        return call
    return {**call, "arguments": {k: coerce_value(v, params.get(k) or {}) for k, v in args.items()}}


def relax_for_gold(calls: list[dict[str, Any]], tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    """``(tools, gold, relaxed)``: the tools with each constraint that a (coerced) gold call breaks relaxed, the
    coerced gold calls, and one line per relaxation.

    Call-matching benchmarks (API-Bank, ToolRL) count such records in their scores, so the record is kept and only
    the offending constraint goes, on this row only: an undocumented parameter the gold passes is allowed
    (``additionalProperties: true``), a parameter whose gold value breaks its type or enum loses that constraint
    (its description stays), a required parameter the gold omits stops being required. Gold calls to tools the
    task does not list are left to the caller. Raises ValueError if a call still fails (nothing left to relax).
    """
    from jsonschema import Draft202012Validator

    from verl_toolmaster.envs.schemas import json_schema

    tools = copy.deepcopy(tools)
    coerced = [coerce_call(c, tools) for c in calls]
    relaxed: list[str] = []
    for call in coerced:
        candidates = [t for t in tools if t["function"]["name"] == call["name"]]
        if not candidates:
            continue
        errors_of = [list(Draft202012Validator(json_schema(t["function"].get("parameters"))).iter_errors(call["arguments"])) for t in candidates]
        if any(not errs for errs in errors_of):
            continue
        best = min(range(len(candidates)), key=lambda i: len(errors_of[i]))
        params = candidates[best]["function"].setdefault("parameters", {"type": "object", "properties": {}})
        done: set[Any] = set()
        for err in errors_of[best]:  # one relaxation per parameter (an array's items each report an error)
            key = next(iter(err.absolute_path), err.validator)
            if key not in done:
                done.add(key)
                relaxed.append(f"{call['name']}: {_relax(params, err)}")
        if list(Draft202012Validator(json_schema(params)).iter_errors(call["arguments"])):
            raise ValueError(f"gold call {call['name']}({json.dumps(call['arguments'], ensure_ascii=False)[:200]}) still breaks its schema after relaxing it")
    return tools, coerced, relaxed


def _relax(params: dict[str, Any], err: Any) -> str:
    """Drop the constraints of ``params`` that validation error ``err`` concerns; returns what was done."""
    path = list(err.absolute_path)
    props = params.setdefault("properties", {})
    if not path and err.validator == "additionalProperties":
        params["additionalProperties"] = True
        extra = sorted(k for k in err.instance if k not in props)
        return f"undocumented parameter(s) {extra} allowed"
    if not path and err.validator == "required":
        missing = [r for r in err.validator_value if r not in err.instance]
        params["required"] = [r for r in params.get("required", []) if r not in missing]
        return f"parameter(s) {missing} no longer required"
    if path and isinstance(path[0], str):
        name = path[0]
        dropped = sorted(k for k in (props.get(name) or {}) if k not in ("description", "default", "example_value"))
        props[name] = {k: v for k, v in (props.get(name) or {}).items() if k not in dropped}
        return f"parameter {name!r}: {', '.join(dropped)} dropped ({err.message[:120]})"
    params.clear()
    params.update({"type": "object", "properties": props, "additionalProperties": True})
    return f"arguments: {err.validator!r} dropped ({err.message[:120]})"
