"""API-Bank level-1 as processed by ToolRL (``system`` with the tool list, ``user`` with the dialogue history,
``answer`` = gold calls) -> schema-env tasks scored by call matching."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from .base import Adapter, RawRecord, files_in, iter_json_array, register_adapter, require_keys
from .schemas import schema_gold
from .task import Task
from .toolrl_format import DuplicateToolError, FormatError, parse_history, parse_tools

SOURCE = "apibank"


def check_gold_names(record: RawRecord, calls: list[dict], tools: list[dict]) -> None:
    """Skip records whose gold calls name a tool the task does not offer (benchmark noise no model can match)."""
    names = {t["function"]["name"] for t in tools}
    unknown = sorted({c["name"] for c in calls} - names)
    if unknown:
        raise record.skip("gold_call_unknown_tool", f"gold call(s) name tool(s) {unknown} not in the tool list")


@register_adapter("apibank")
class APIBankAdapter(Adapter):
    """Reads JSON-array files such as ``level-1-api_processed.json``."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("*.json",), "API-Bank .json"):
            yield from iter_json_array(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("system", "user", "answer"))
        try:
            tools = parse_tools(d["system"])
            context, query, trailing = parse_history(d["user"])
        except DuplicateToolError as e:
            raise record.skip("duplicate_tool_name", str(e)) from None
        except FormatError as e:
            raise record.invalid("bad_prompt", str(e)) from None
        if not tools:
            raise record.invalid("no_tools", "the system text lists no tools")
        if not isinstance(d["answer"], list) or not d["answer"]:
            raise record.invalid("bad_answer", "'answer' must be a non-empty list of {name, parameters}")
        calls = []
        for a in d["answer"]:
            if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not isinstance(a.get("parameters", {}), dict):
                raise record.invalid("bad_answer", f"answer entry is not {{name, parameters}}: {str(a)[:120]}")
            calls.append({"name": a["name"], "arguments": a.get("parameters", {})})
        check_gold_names(record, calls, tools)
        gold, problem = schema_gold(calls, tools)
        if problem is not None:
            raise record.skip("gold_call_violates_schema", problem)
        other = d.get("other") if isinstance(d.get("other"), dict) else {}
        return Task(
            id=f"apibank-{record.file.stem}-{record.row}",
            source=SOURCE,
            query=query,
            context=context,
            trailing=trailing,
            env={"kind": "schema", "tools": tools},
            ground_truth={"calls": calls, "response": None},
            gold=[[gold]],
            tags={k: other[k] for k in ("file", "id") if k in other},
        )
