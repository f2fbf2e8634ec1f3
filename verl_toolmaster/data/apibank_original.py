"""API-Bank as its own repository publishes it (DAMO-ConvAI ``api-bank/``): dialogue files
``lv1-lv2-samples/<level>/*.jsonl``, one ``{"role": "User" | "AI" | "API", ...}`` entry per line, and the API
documentation as class attributes (``description``, ``input_parameters``) of ``apis/*.py``.

One record per API entry of a dialogue, as API-Bank's evaluator forms its API-call samples: the dialogue before
the entry is the history, the entry's ``api_name``/``param_dict`` the gold call. The tools follow the level:
``level-1-given-desc`` shows the documentation of every API the dialogue uses; ``level-2-toolsearcher`` shows only
``ToolSearcher``, and the APIs the dialogue uses are callable without being listed (the model learns of them
from the search results in the history). An earlier API entry becomes an assistant tool call and a tool message
with the recorded output (``str(output)``, as API-Bank's prompt writes it). API-Bank checks a call by executing it
and comparing the result; its API implementations are not used here, so calls are scored by name and parameters.
Level 3 (``lv3-samples/*.txt`` scenarios) is not read.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .base import InputError, InvalidRecord, RawRecord
from .toolrl_format import params_tool

SEARCHER = "ToolSearcher"


def find_apis_dir(path: Path) -> Path:
    """The ``apis/`` folder of the API-Bank checkout holding ``path`` (searched upwards)."""
    for p in [path, *path.parents][:5]:
        if (p / "apis").is_dir():
            return p / "apis"
    raise InputError(f"{path}: API-Bank dialogue files need the API documentation in apis/*.py of their api-bank folder; none found above")


def api_docs(apis_dir: Path) -> dict[str, dict[str, Any]]:
    """API name (class name) -> OpenAI tool, from the literal ``description``/``input_parameters`` class attributes
    of ``apis/*.py`` (parsed, never imported: the modules need API-Bank's databases and models)."""
    tools: dict[str, dict[str, Any]] = {}
    for f in sorted(apis_dir.glob("*.py")):
        try:
            tree = ast.parse(f.read_text(encoding="utf-8"))
        except SyntaxError as e:
            raise InputError(f"{f}: does not parse: {e.msg} (line {e.lineno})") from None
        for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
            attrs: dict[str, Any] = {}
            for stmt in cls.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                    if stmt.targets[0].id in ("description", "input_parameters"):
                        try:
                            attrs[stmt.targets[0].id] = ast.literal_eval(stmt.value)
                        except ValueError:
                            raise InputError(f"{f}: {cls.name}.{stmt.targets[0].id} is not a literal") from None
            if isinstance(attrs.get("input_parameters"), dict):
                tools[cls.name] = params_tool(cls.name, str(attrs.get("description", "")), attrs["input_parameters"])
    if not tools:
        raise InputError(f"{apis_dir}: no API class with description/input_parameters found")
    return tools


def dialogue_records(path: Path) -> Iterator[RawRecord]:
    """One record per API entry of the dialogue file ``path``; an undecodable file is one error record."""
    entries = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as e:
                yield RawRecord(path, 0, None, error=InvalidRecord(path, None, "invalid_json", f"line {lineno}: {e.msg} (column {e.colno})"))
                return
    k = 0
    for i, entry in enumerate(entries):
        if isinstance(entry, dict) and entry.get("role") == "API":
            yield RawRecord(path, k, {"history": entries[:i], "call": entry, "dialogue": entries})
            k += 1


def _message(record: RawRecord, j: int, entry: Any, messages: list[dict[str, Any]]) -> None:
    role = entry.get("role") if isinstance(entry, dict) else None
    if role == "User" and isinstance(entry.get("text"), str):
        messages.append({"role": "user", "content": entry["text"]})
    elif role == "AI" and isinstance(entry.get("text"), str):
        messages.append({"role": "assistant", "content": entry["text"]})
    elif role == "API" and isinstance(entry.get("api_name"), str) and isinstance(entry.get("param_dict"), dict):
        call = {"type": "function", "function": {"name": entry["api_name"], "arguments": entry["param_dict"]}}
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant" and not last.get("tool_calls"):
            last["tool_calls"] = [call]  # the AI's words and the call it makes are one turn
        else:
            messages.append({"role": "assistant", "content": "", "tool_calls": [call]})
        result = entry.get("result") if isinstance(entry.get("result"), dict) else {}
        messages.append({"role": "tool", "content": str(result.get("output"))})
    else:
        raise record.invalid("bad_dialogue", f"dialogue entry {j} is not a User/AI text or an API call: {str(entry)[:120]}")


def convert_dialogue(record: RawRecord, docs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """``{"context", "query", "trailing", "calls", "tools", "unlisted", "level"}`` of one API-call sample."""
    d = record.data
    messages: list[dict[str, Any]] = []
    for j, entry in enumerate(d["history"]):
        _message(record, j, entry, messages)
    last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=None)
    if last_user is None:
        raise record.invalid("bad_dialogue", "no User entry before the API call")
    call = d["call"]
    if not isinstance(call.get("api_name"), str) or not isinstance(call.get("param_dict"), dict):
        raise record.invalid("bad_dialogue", f"API entry without api_name/param_dict: {str(call)[:120]}")
    used = list(dict.fromkeys(e["api_name"] for e in d["dialogue"] if isinstance(e, dict) and e.get("role") == "API" and isinstance(e.get("api_name"), str)))
    unknown = [n for n in used if n not in docs]
    if unknown:
        raise record.invalid("unknown_api", f"no documentation in apis/ for {unknown}")
    level = record.file.parent.name
    if "toolsearcher" in level:
        tools, unlisted = [docs[SEARCHER]], [docs[n] for n in used if n != SEARCHER]
    else:
        tools, unlisted = [docs[n] for n in used], []
    return {
        "context": messages[:last_user],
        "query": messages[last_user]["content"],
        "trailing": messages[last_user + 1 :],
        "calls": [{"name": call["api_name"], "arguments": call["param_dict"]}],
        "tools": tools,
        "unlisted": unlisted,
        "level": level,
    }
