"""Parsers for the ToolRL prompt notation, shared by the ToolRL (rlla) and API-Bank (ToolRL-processed) adapters.

The notation: a system text with an ``**Available Tools**`` list, each entry either ``N. Name: ...`` /
``Description: ...`` / ``Parameters: {...}`` (ToolRL's rlla data, API-Bank levels 1 and 2) or ``N. ToolName: description``
/ ``Parameters: {...}`` (API-Bank level 3), a ``**Dialogue Records History**`` of ``<user>``, ``<think>``, ``<tool_call>``, ``<obs>``
and ``<response>`` blocks, and replies holding ``<tool_call>`` JSON lines and/or a ``<response>``.
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any

from .schemas import function_tool, schema_from_type_name


class FormatError(ValueError):
    """The text does not follow the ToolRL notation; the message says where."""


_TOOL_BLOCK = re.compile(r"^\d+\.\s*Name:\s*(.+?)\s*\nDescription:(.*?)\nParameters:\s*(.*?)\s*(?=^\d+\.\s*Name:|\Z)", re.M | re.S)
# API-Bank level 3 as ToolRL wrote it: "1. QueryMeeting: The API for ...", then a "Parameters: {...}" line
_TOOL_LINE = re.compile(r"^\d+\.\s*([A-Za-z_][\w.-]*):[ \t]*(.*?)\nParameters:\s*(.*?)\s*(?=^\d+\.\s*[A-Za-z_][\w.-]*:|\Z)", re.M | re.S)
_TAG = re.compile(r"<(user|think|tool_call|obs|response)>(.*?)</\1>", re.S)


def _literal(text: str) -> Any:
    """Decode a JSON or Python-literal dict/list (API-Bank writes Python reprs, ToolRL writes JSON)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError) as e:
        raise FormatError(f"not a JSON or Python literal ({type(e).__name__}): {text[:120]!r}") from None


def tools_section(system: str) -> str:
    start = system.find("**Available Tools**")
    if start < 0:
        raise FormatError("no '**Available Tools**' section in the system text")
    end = system.find("**Steps for Each Turn**", start)
    return system[start : end if end >= 0 else len(system)]


def param_schema(name: str, spec: Any) -> tuple[dict[str, Any], bool]:
    """One parameter's JSON schema and whether its type is marked optional (``"str, optional"``)."""
    if not isinstance(spec, dict):
        raise FormatError(f"parameter {name!r}: expected an object, got {type(spec).__name__}")
    schema, optional = schema_from_type_name(spec.get("type"))
    schema = dict(schema)
    if isinstance(spec.get("description"), str):
        schema["description"] = spec["description"]
    if "default" in spec and spec["default"] not in ("", None):
        schema["default"] = spec["default"]
    return schema, optional


def parse_tools(system: str) -> list[dict[str, Any]]:
    """OpenAI function tools from the ``**Available Tools**`` list, in list order.

    A tool listed twice identically is kept once; two different tools under one name are both kept (the
    benchmark shows both; see :func:`repeated_names`)."""
    section = tools_section(system)
    body = section[len("**Available Tools**") :]
    blocks = list(_TOOL_BLOCK.finditer(body))
    if not blocks and re.search(r"^\d+\.\s*Name:", body, re.M):
        raise FormatError("tool list entries do not follow 'N. Name:/Description:/Parameters:'")
    if not blocks:
        blocks = list(_TOOL_LINE.finditer(body))
        if not blocks and re.search(r"^\d+\.\s*[A-Za-z_][\w.-]*:", body, re.M):
            raise FormatError("tool list entries follow neither 'N. Name:/Description:/Parameters:' nor 'N. ToolName: description/Parameters:'")
    tools: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for m in blocks:
        name, description, params_text = m.group(1).strip(), m.group(2).strip(), m.group(3).strip()
        params_text = params_text.split("\n\n", 1)[0].strip()
        params = _literal(params_text) if params_text else {}
        if not isinstance(params, dict):
            raise FormatError(f"tool {name!r}: Parameters is a {type(params).__name__}, expected an object")
        key = (name, params_text, description)
        if key in seen:
            continue  # listed twice, identically
        seen.add(key)
        tools.append(params_tool(name, description, params))
    return tools


def params_tool(name: str, description: str, params: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool from a ``{parameter: {"type": type name, "description": ...}}`` mapping (the ToolRL
    notation's ``Parameters:``, API-Bank's ``input_parameters``)."""
    properties, optional = {}, set()
    for pname, pspec in params.items():
        properties[pname], opt = param_schema(f"{name}.{pname}", pspec)
        if opt:
            optional.add(pname)
    # The notation marks optionality only in the xLAM style ("str, optional"); when a tool marks some parameters
    # optional the others are required unless they have a default. Without markers (ToolACE style, API-Bank) nothing
    # is known, and the benchmarks' gold calls do omit such parameters, so none is required.
    required = [p for p in properties if p not in optional and "default" not in properties[p]] if optional else []
    return function_tool(name, description, {"type": "object", "properties": properties, "required": required})


def repeated_names(tools: list[dict[str, Any]]) -> list[str]:
    """Names under which more than one (different) tool is listed."""
    names = [t["function"]["name"] for t in tools]
    return sorted({n for n in names if names.count(n) > 1})


def parse_calls(block: str) -> list[dict[str, Any]]:
    """Calls of one ``<tool_call>`` block: one JSON object per line (or a JSON list), ``parameters`` or ``arguments``."""
    text = block.strip()
    if not text:
        return []
    try:
        items = json.loads(text)
        items = items if isinstance(items, list) else [items]
    except json.JSONDecodeError:
        items = []
        for line in text.splitlines():
            if line.strip():
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise FormatError(f"tool call line is not JSON ({e.msg}): {line.strip()[:120]!r}") from None
    calls = []
    for it in items:
        if not isinstance(it, dict) or not isinstance(it.get("name"), str):
            raise FormatError(f"tool call without a string 'name': {json.dumps(it)[:120]}")
        args = it.get("parameters", it.get("arguments", {}))
        if args is None:
            args = {}
        if not isinstance(args, dict):
            raise FormatError(f"tool call {it['name']!r}: parameters are a {type(args).__name__}, expected an object")
        calls.append({"name": it["name"], "arguments": args})
    return calls


def parse_reply(text: str) -> tuple[list[dict[str, Any]], str | None]:
    """Gold calls and gold ``<response>`` text of a reply (either may be absent)."""
    calls: list[dict[str, Any]] = []
    response = None
    for tag, body in _TAG.findall(text):
        if tag == "tool_call":
            calls.extend(parse_calls(body))
        elif tag == "response":
            response = body.strip()
    return calls, response


def _tool_calls(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}} for c in calls]


def parse_history(text: str) -> tuple[list[dict[str, Any]], str, list[dict[str, Any]]]:
    """``(context, request, trailing)``: chat messages of a ``**Dialogue Records History**`` split at the last user block.

    ``<user>`` -> user; ``<response>`` and ``<tool_call>`` between two user/obs blocks -> one assistant message
    (content, tool_calls); ``<obs>`` -> a tool message with the benchmark's recorded observation. ``<think>``
    blocks of past turns are dropped. ``trailing`` holds what follows the last user request (calls already made
    for it and their observations), so the reply continues from there.
    """
    messages: list[dict[str, Any]] = []
    pending: dict[str, Any] | None = None

    def flush() -> None:
        nonlocal pending
        if pending is not None:
            messages.append(pending)
            pending = None

    for tag, body in _TAG.findall(text):
        body = body.strip()
        if tag == "user":
            flush()
            messages.append({"role": "user", "content": body})
        elif tag == "think":
            continue
        elif tag in ("response", "tool_call"):
            if pending is None:
                pending = {"role": "assistant", "content": ""}
            if tag == "response":
                pending["content"] = (pending["content"] + "\n" + body).strip() if pending["content"] else body
            else:
                pending.setdefault("tool_calls", []).extend(_tool_calls(parse_calls(body)))
        else:  # obs
            if pending is None or not pending.get("tool_calls"):
                raise FormatError("an <obs> block follows no <tool_call>")
            flush()
            messages.append({"role": "tool", "content": body})
    flush()
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise FormatError("the dialogue history has no <user> block")
    return messages[:last_user], messages[last_user]["content"], messages[last_user + 1 :]
