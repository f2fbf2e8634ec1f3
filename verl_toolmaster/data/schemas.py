"""Tool-schema helpers: OpenAI function tools from the various benchmark notations."""

from __future__ import annotations

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


def cast_bfcl_schema(schema: dict[str, Any], type_map: dict[str, str]) -> dict[str, Any]:
    """Copy of a BFCL parameter schema with BFCL type names (``dict``, ``float``, ``tuple``...) mapped to JSON
    Schema types through ``type_map`` (bfcl-eval's ``GORILLA_TO_OPENAPI``); unknown or missing types become
    ``string`` as bfcl-eval does for OpenAI-style models."""
    out = dict(schema)
    t = out.get("type")
    out["type"] = type_map.get(t, "string") if isinstance(t, str) else "string"
    if isinstance(out.get("properties"), dict):
        out["properties"] = {k: cast_bfcl_schema(v, type_map) for k, v in out["properties"].items() if isinstance(v, dict)}
    if isinstance(out.get("items"), dict):
        out["items"] = cast_bfcl_schema(out["items"], type_map)
    return out
