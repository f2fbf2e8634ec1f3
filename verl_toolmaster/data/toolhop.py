"""ToolHop (normalised JSONL: question, answer, sub_task, tools, functions, gold_calls) -> python-env tasks."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..envs.calls import bind_arguments, parse_call_string
from .base import Adapter, RawRecord, files_in, iter_jsonl, register_adapter, require_keys
from .schemas import function_tool
from .task import Task

SOURCE = "toolhop"


def _defined_names(tree: ast.Module) -> set[str]:
    return {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}


def _is_main_guard(node: ast.stmt) -> bool:
    return isinstance(node, ast.If) and "__name__" in ast.unparse(node.test) and "__main__" in ast.unparse(node.test)


def _calls_any(node: ast.AST, names: set[str]) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id in names:
            return True
    return False


def tool_source(source: str) -> tuple[str, ast.Module]:
    """The tool's source without its top-level example usage.

    Kept: imports, function and class definitions, and any other top-level statement that neither calls
    ``print`` nor a function/class defined in the same source. Dropped: ``if __name__ == "__main__":`` blocks
    and example calls such as ``result = tool(...)`` / ``print(result)``, which would run on every load.
    """
    tree = ast.parse(source)
    own = _defined_names(tree) | {"print"}
    lines = source.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            keep = True
        elif _is_main_guard(node) or _calls_any(node, own):
            keep = False
        else:
            keep = not isinstance(node, ast.Expr) or isinstance(node.value, ast.Constant)
        if keep:
            start = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("".join(lines[start - 1 : node.end_lineno]).rstrip() + "\n")
    return "\n\n".join(kept), tree


def _param_order(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    return [a.arg for a in [*fn.args.posonlyargs, *fn.args.args]]


@register_adapter("toolhop")
class ToolHopAdapter(Adapter):
    """Reads ``*.jsonl`` files of the normalised ToolHop release (one query per line)."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("*.jsonl", "**/*.jsonl"), "ToolHop .jsonl"):
            yield from iter_jsonl(f)

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("id", "question", "answer", "tools", "functions"))
        if not isinstance(d["tools"], dict) or not isinstance(d["functions"], list):
            raise record.invalid("bad_field", "'tools' must be an object (sub-question -> tool doc) and 'functions' a list of sources")
        tools, names = [], []
        for sub_q, doc in d["tools"].items():
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("parameters"), dict):
                raise record.invalid("bad_tool", f"tool for sub-question {sub_q!r} lacks a name or parameters object")
            tools.append(function_tool(doc["name"], doc.get("description", ""), doc["parameters"]))
            names.append(doc["name"])
        if len(set(names)) != len(names):
            raise record.skip("duplicate_tool_name", f"tool names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")

        code: dict[str, str] = {}
        signatures: dict[str, list[str]] = {}
        for i, src in enumerate(d["functions"]):
            if not isinstance(src, str):
                raise record.invalid("bad_function", f"functions[{i}] is not a string")
            try:
                cleaned, tree = tool_source(src)
            except SyntaxError as e:
                raise record.invalid("syntax_error", f"functions[{i}] does not parse: {e.msg} (line {e.lineno})") from None
            defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
            for name in names:
                if name in defs and name not in code:
                    code[name] = cleaned
                    signatures[name] = _param_order(defs[name])
        missing = [n for n in names if n not in code]
        if missing:
            raise record.invalid("missing_source", f"no source in 'functions' defines tool(s) {missing}")

        gold = None
        gold_calls = d.get("gold_calls") or []
        if gold_calls:
            steps = []
            for s in gold_calls:
                try:
                    name, args, kwargs = parse_call_string(s)
                    if name not in signatures:
                        raise ValueError(f"call string {s!r} names unknown tool {name!r}")
                    arguments = bind_arguments(name, signatures[name], args, kwargs)
                except ValueError as e:
                    raise record.invalid("bad_gold_call", str(e)) from None
                steps.append([{"name": name, "arguments": arguments}])
            gold = [steps]

        sub_answers = d.get("sub_task") or {}
        answer = str(d["answer"])
        tags: dict[str, Any] = {k: d[k] for k in ("hop_count", "domain", "category", "source_id") if k in d}
        return Task(
            id=str(d["id"]),
            source=SOURCE,
            query=str(d["question"]),
            env={"kind": "python", "tools": tools, "code": code},
            ground_truth={"answer": answer, "answer_type": str(d.get("answer_type", "")), "sub_answers": {str(k): str(v) for k, v in sub_answers.items()}},
            gold=gold,
            gold_answers=[answer],
            tags=tags,
        )
