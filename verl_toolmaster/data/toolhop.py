"""ToolHop (``ToolHop.json`` as released, or JSON lines such as the normalised subset with ``gold_calls``:
question, answer, sub_task, tools, functions) -> python-env tasks.

Two different tools of one query can share a name (e.g. ``extract_first_name`` at two hops, with different code
and schemas). ToolHop's runner would execute whichever source it defines last for both; here every tool stays
callable: the k-th tool with a repeated name is renamed ``<name>_<k>`` (:func:`disambiguated_names`) in its
schema, in its code (:func:`rename_function`) and in the gold calls that belong to it (the call binds onto that
tool's signature), flagged ``duplicate_tool_renamed`` in the row's tags. Sub-task answers are keyed by
sub-question, not by tool name, so they need no change.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..envs.calls import bind_arguments, parse_call_string
from .base import Adapter, RawRecord, files_in, iter_json_array, iter_jsonl, register_adapter, require_keys
from .repairs import add_repair
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


def _fits(fn: ast.FunctionDef | ast.AsyncFunctionDef, tool: dict[str, Any]) -> bool:
    """The source's function takes exactly the parameters its schema lists."""
    props = set((tool["function"]["parameters"].get("properties") or {}))
    return props == {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}


def _accepts(params: list[str], fn: ast.FunctionDef | ast.AsyncFunctionDef, args: list[Any], kwargs: dict[str, Any]) -> bool:
    """A call with ``args``/``kwargs`` binds onto the function's signature (no unknown keyword, nothing missing)."""
    if len(args) > len(params) and fn.args.vararg is None:
        return False
    names = set(params) | {a.arg for a in fn.args.kwonlyargs}
    if fn.args.kwarg is None and not set(kwargs) <= names:
        return False
    n_defaults = len(fn.args.defaults)
    required = params[: len(params) - n_defaults] if n_defaults else params
    given = set(params[: len(args)]) | set(kwargs)
    return set(required) <= given


def rename_function(source: str, old: str, new: str) -> str:
    """``source`` with its top-level ``def old(`` renamed to ``new``; ``old`` stays bound to the same function,
    so references inside the source (recursion, helpers) still resolve."""
    renamed, n = re.subn(rf"^((?:async\s+)?def\s+){re.escape(old)}(\s*\()", rf"\g<1>{new}\g<2>", source, count=1, flags=re.M)
    if n != 1:
        raise ValueError(f"no top-level 'def {old}(' in the source")
    return f"{renamed.rstrip()}\n\n\n{old} = {new}\n"


def disambiguated_names(names: list[str]) -> list[str]:
    """Deterministic unique names: the first tool keeps its name, the k-th tool with the same name gets
    ``<name>_<k>`` (``_<k+1>``, ... if that is taken too)."""
    taken = set(names)
    seen: dict[str, int] = {}
    out = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        if seen[name] == 1:
            out.append(name)
            continue
        k = seen[name]
        while f"{name}_{k}" in taken:
            k += 1
        out.append(f"{name}_{k}")
        taken.add(out[-1])
    return out


@register_adapter("toolhop")
class ToolHopAdapter(Adapter):
    """Reads ToolHop as released (``ToolHop.json``, one JSON list) and as JSON lines (``*.jsonl``, one query per
    line, e.g. the normalised subset with ``gold_calls``)."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("*.jsonl", "**/*.jsonl", "*.json", "**/*.json"), "ToolHop .json/.jsonl"):
            yield from (iter_jsonl(f) if f.suffix == ".jsonl" else iter_json_array(f))

    def convert(self, record: RawRecord) -> Task:
        d = require_keys(record, ("id", "question", "answer", "tools", "functions"))
        if not isinstance(d["tools"], dict) or not isinstance(d["functions"], list):
            raise record.invalid("bad_field", "'tools' must be an object (sub-question -> tool doc) and 'functions' a list of sources")
        tools, original = [], []
        for sub_q, doc in d["tools"].items():
            if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("parameters"), dict):
                raise record.invalid("bad_tool", f"tool for sub-question {sub_q!r} lacks a name or parameters object")
            tools.append(function_tool(doc["name"], doc.get("description", ""), doc["parameters"]))
            original.append(doc["name"])
        names = disambiguated_names(original)

        sources: list[tuple[str, dict[str, ast.FunctionDef | ast.AsyncFunctionDef]]] = []
        for i, src in enumerate(d["functions"]):
            if not isinstance(src, str):
                raise record.invalid("bad_function", f"functions[{i}] is not a string")
            try:
                cleaned, tree = tool_source(src)
            except SyntaxError as e:
                raise record.invalid("syntax_error", f"functions[{i}] does not parse: {e.msg} (line {e.lineno})") from None
            sources.append((cleaned, {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}))

        # Each tool takes a source defining its (original) name: for a repeated name, the unused source whose
        # signature matches the tool's schema, else the next unused one, else (fewer sources than tools, as
        # ToolHop's own runner would then execute one source for both) the last one defining it.
        code: dict[str, str] = {}
        defs: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = {}
        used: set[int] = set()
        tags: dict[str, Any] = {k: d[k] for k in ("hop_count", "domain", "category", "source_id") if k in d}
        for tool, old, new in zip(tools, original, names):
            candidates = [i for i, (_, fns) in enumerate(sources) if old in fns]
            if not candidates:
                raise record.invalid("missing_source", f"no source in 'functions' defines tool {old!r}")
            free = [i for i in candidates if i not in used]
            pick = next((i for i in free if _fits(sources[i][1][old], tool)), free[0] if free else candidates[-1])
            used.add(pick)
            source, fns = sources[pick]
            defs[new] = fns[old]
            if new != old:
                tool["function"]["name"] = new
                source = rename_function(source, old, new)
                sub_q = list(d["tools"])[names.index(new)]
                add_repair(tags, "duplicate_tool_renamed", f"{old!r} (functions[{pick}], for {sub_q!r}) is named {new!r}")
            code[new] = source

        gold = None
        gold_calls = d.get("gold_calls") or []
        if gold_calls:
            parsed = []
            for s in gold_calls:
                try:
                    name, args, kwargs = parse_call_string(s)
                except ValueError as e:
                    raise record.invalid("bad_gold_call", str(e)) from None
                if name not in original:
                    raise record.invalid("bad_gold_call", f"call string {s!r} names unknown tool {name!r}")
                same = [n for n, o in zip(names, original) if o == name]
                fitting = [n for n in same if _accepts(_param_order(defs[n]), defs[n], args, kwargs)] or same
                parsed.append((name, args, kwargs, fitting))
            # A repeated name: the call goes to the tool whose signature it fits; calls that fit several take, in
            # order, the ones no other call needs (calls fitting exactly one tool are placed first).
            targets: list[str | None] = [f[0] if len(f) == 1 else None for *_, f in parsed]
            for i, (*_, fitting) in enumerate(parsed):
                if targets[i] is None:
                    free = [n for n in fitting if n not in targets]
                    targets[i] = (free or fitting)[0]
            steps = []
            for (name, args, kwargs, _), target in zip(parsed, targets):
                try:
                    arguments = bind_arguments(target, _param_order(defs[target]), args, kwargs)
                except ValueError as e:
                    raise record.invalid("bad_gold_call", str(e)) from None
                steps.append([{"name": target, "arguments": arguments}])
            gold = [steps]

        sub_answers = d.get("sub_task") or {}
        answer = str(d["answer"])
        record_id = d["id"] if isinstance(d["id"], str) else f"toolhop-{d['id']}"  # ToolHop.json numbers its queries
        return Task(
            id=str(record_id),
            source=SOURCE,
            query=str(d["question"]),
            env={"kind": "python", "tools": tools, "code": code},
            ground_truth={"answer": answer, "answer_type": str(d.get("answer_type", "")), "sub_answers": {str(k): str(v) for k, v in sub_answers.items()}},
            gold=gold,
            gold_answers=[answer],
            tags=tags,
        )
