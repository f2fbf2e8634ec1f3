"""API-Bank as processed by ToolRL (``level-{1,2,3}-api_processed.json``: ``system`` with the tool list, ``user``
with the dialogue history, ``answer`` = the gold call(s)) -> schema-env tasks scored by call matching.

Layouts: ``answer`` is a list of ``{name, parameters}`` (levels 1 and 3) or a single such object (level 2); the tool
list uses ``Name:/Description:`` lines (levels 1 and 2) or ``N. ToolName: description`` (level 3); the history may
carry earlier ``<tool_call>`` and ``<obs>`` blocks (level 2). API-Bank's own dialogue files (``*.jsonl`` under its
``lv1-lv2-samples/``) are read through :mod:`.apibank_original`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .apibank_original import api_docs, convert_dialogue, dialogue_records, find_apis_dir
from .base import Adapter, RawRecord, files_in, iter_json_array, register_adapter, require_keys
from .schema_tasks import schema_env_and_gold
from .task import Task
from .toolrl_format import FormatError, parse_history, parse_tools

SOURCE = "apibank"


def gold_calls(record: RawRecord, answer: Any) -> list[dict[str, Any]]:
    """The gold calls of ``answer``: a list of ``{name, parameters}`` or one such object."""
    entries = [answer] if isinstance(answer, dict) else answer
    if not isinstance(entries, list) or not entries:
        raise record.invalid("bad_answer", "'answer' must be a {name, parameters} object or a non-empty list of them")
    calls = []
    for a in entries:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not isinstance(a.get("parameters", {}), dict):
            raise record.invalid("bad_answer", f"answer entry is not {{name, parameters}}: {str(a)[:120]}")
        calls.append({"name": a["name"], "arguments": a.get("parameters", {})})
    return calls


@register_adapter("apibank")
class APIBankAdapter(Adapter):
    """Reads ToolRL's JSON-array files (``level-1-api_processed.json`` ...) or, through :mod:`.apibank_original`,
    API-Bank's own ``lv1-lv2-samples`` dialogue folders."""

    def __init__(self, **options: Any):
        super().__init__(**options)
        self._docs: dict[Path, dict[str, dict[str, Any]]] = {}  # apis/ folder -> API docs (original layout)
        self.notes: list[str] = []

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        dialogues = [path] if path.suffix == ".jsonl" else sorted(path.glob("**/*.jsonl")) if path.is_dir() else []
        if dialogues:  # API-Bank's own release
            apis = find_apis_dir(path)
            self._docs.setdefault(apis, api_docs(apis))
            silent = 0
            for f in dialogues:
                n = 0
                for rec in dialogue_records(f):
                    rec.data = rec.data and {**rec.data, "apis": apis}
                    n += 1
                    yield rec
                silent += n == 0
            if silent:
                self.notes.append(f"{silent} dialogue file(s) without an API call give no API-call sample")
            return
        for f in files_in(path, ("*.json",), "API-Bank .json/.jsonl"):
            yield from iter_json_array(f)

    def convert(self, record: RawRecord) -> Task:
        if record.file.suffix == ".jsonl":
            return self._convert_dialogue(record)
        d = require_keys(record, ("system", "user", "answer"))
        try:
            tools = parse_tools(d["system"])
            context, query, trailing = parse_history(d["user"])
        except FormatError as e:
            raise record.invalid("bad_prompt", str(e)) from None
        if not tools:
            raise record.invalid("no_tools", "the system text lists no tools")
        calls = gold_calls(record, d["answer"])
        other = d.get("other") if isinstance(d.get("other"), dict) else {}
        tags: dict[str, Any] = {k: v for k, v in other.items() if isinstance(v, (str, int, float, bool))}
        env, gold = schema_env_and_gold(record, tools, calls, tags)
        return Task(
            id=f"apibank-{record.file.stem}-{record.row}",
            source=SOURCE,
            query=query,
            context=context,
            trailing=trailing,
            env=env,
            ground_truth={"calls": calls, "response": None},
            gold=[[gold]],
            tags=tags,
        )

    def _convert_dialogue(self, record: RawRecord) -> Task:
        s = convert_dialogue(record, self._docs[record.data["apis"]])
        tags: dict[str, Any] = {"file": record.file.name, "level": s["level"]}
        env, gold = schema_env_and_gold(record, s["tools"], s["calls"], tags, s["unlisted"])
        return Task(
            id=f"apibank-{record.file.stem}-{record.row}",
            source=SOURCE,
            query=s["query"],
            context=s["context"],
            trailing=s["trailing"],
            env=env,
            ground_truth={"calls": s["calls"], "response": None},
            gold=[[gold]],
            tags=tags,
        )
