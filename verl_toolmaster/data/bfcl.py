"""BFCL v4 (bfcl-eval package data, or a folder laid out like it) -> schema-env (single-turn) and bfcl-env
(multi-turn) tasks.

Categories converted: the AST single-turn ones (``simple_python``, ``simple_java``, ``simple_javascript``,
``multiple``, ``parallel``, ``parallel_multiple``, ``irrelevance`` and their ``live_*`` counterparts, plus
``live_relevance``) and the multi-turn ones (``multi_turn_base``, ``_miss_func``, ``_miss_param``,
``_long_context``). Not converted: ``memory_*`` and ``web_search_*`` (their backends need prerequisite
conversations or the live web) and ``format_sensitivity`` (an id list re-prompting other categories).
Function docs get bfcl-eval's own language hints, as bfcl-eval shows them to models.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ..envs.calls import bind_arguments, parse_call_string
from .base import Adapter, InputError, InvalidRecord, RawRecord, iter_jsonl, register_adapter, require_keys
from .bfcl_gold import GoldProblem, gold_calls
from .repairs import add_repair
from .schemas import cast_bfcl_schema, function_tool
from .task import Task

SINGLE_TURN = (
    "simple_python",
    "simple_java",
    "simple_javascript",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
    "live_relevance",
)
MULTI_TURN = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")
SUPPORTED = SINGLE_TURN + MULTI_TURN
NO_POSSIBLE_ANSWER = ("irrelevance", "live_irrelevance", "live_relevance")  # scored on whether a call is made
FILE_PREFIX = "BFCL_v4_"


def package_data_dir() -> Path:
    """``bfcl_eval/data`` of the installed bfcl-eval package."""
    try:
        root = resources.files("bfcl_eval") / "data"
    except ModuleNotFoundError:
        raise InputError("bfcl-eval is not installed: pip install --no-deps bfcl-eval, or pass --input FOLDER") from None
    return Path(str(root))


def category_of(path: Path) -> str:
    stem = path.stem
    return stem[len(FILE_PREFIX) :] if stem.startswith(FILE_PREFIX) else stem


@register_adapter("bfcl")
class BFCLAdapter(Adapter):
    """Input: a ``BFCL_v4_<category>.json`` file, a folder holding such files with ``possible_answer/`` and
    ``multi_turn_func_doc/`` beside them, or nothing (the installed bfcl-eval package's data)."""

    input_optional = True

    def __init__(self, **options: Any):
        super().__init__(**options)
        cats = options.get("categories")
        if cats:
            unknown = sorted(set(cats) - set(SUPPORTED))
            if unknown:
                raise ValueError(f"unsupported BFCL categories {unknown}; supported: {list(SUPPORTED)}")
        self.categories: tuple[str, ...] | None = tuple(cats) if cats else None
        self.notes: list[str] = []  # files seen but not converted, with why
        self._docs: dict[tuple[Path, str, str], list[dict[str, Any]]] = {}  # hinted multi-turn docs, shared read-only
        from bfcl_eval.constants.default_prompts import DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
        from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING
        from bfcl_eval.constants.type_mappings import GORILLA_TO_OPENAPI
        from bfcl_eval.utils import add_language_specific_hint_to_function_doc

        self._more_functions_prompt = DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC
        self._doc_files = MULTI_TURN_FUNC_DOC_FILE_MAPPING
        self._type_map = GORILLA_TO_OPENAPI
        self._add_hints = add_language_specific_hint_to_function_doc

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        return ("categories",)

    # ---- reading ---------------------------------------------------------------------------------------

    def _question_files(self, path: Path) -> list[Path]:
        if path.is_file():
            cat = category_of(path)
            if cat not in SUPPORTED:
                raise InputError(f"{path}: BFCL category {cat!r} is not supported; supported: {list(SUPPORTED)}")
            return [path]
        if not path.is_dir():
            raise InputError(f"{path}: no such file or directory")
        files = []
        for f in sorted(path.glob(f"{FILE_PREFIX}*.json")):
            cat = category_of(f)
            if cat not in SUPPORTED:
                self.notes.append(f"{f.name}: category {cat!r} not converted")
            elif self.categories is None or cat in self.categories:
                files.append(f)
        if not files:
            raise InputError(f"{path}: no {FILE_PREFIX}<category>.json files of the selected categories")
        return files

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        path = package_data_dir() if path is None else path
        for qfile in self._question_files(path):
            cat = category_of(qfile)
            answers: dict[str, Any] = {}
            afile = qfile.parent / "possible_answer" / qfile.name
            if cat not in NO_POSSIBLE_ANSWER:
                if not afile.is_file():
                    raise InputError(f"{qfile}: its possible answers {afile} are missing")
                for rec in iter_jsonl(afile):
                    if rec.error is None and isinstance(rec.data, dict) and "id" in rec.data:
                        answers[str(rec.data["id"])] = rec.data
            for rec in iter_jsonl(qfile):
                if rec.error is None:
                    qid = str(rec.data.get("id")) if isinstance(rec.data, dict) else None
                    rec.data = {"entry": rec.data, "answer": answers.get(qid) if qid else None, "category": cat, "dir": qfile.parent, "answer_file": afile}
                yield rec

    def _class_docs(self, folder: Path, cls_name: str, qid: str, record: RawRecord) -> list[dict[str, Any]]:
        """A class's function docs with bfcl-eval's hints, read and hinted once per folder, class and language."""
        docs_dir = folder / "multi_turn_func_doc"
        key = (docs_dir, cls_name, self._language_hint_key(qid))
        if key not in self._docs:
            fname = self._doc_files.get(cls_name)
            if fname is None:
                raise record.invalid("unknown_class", f"involved class {cls_name!r} has no function-doc file in bfcl-eval's mapping")
            fpath = docs_dir / fname
            if not fpath.is_file():
                raise InvalidRecord(fpath, None, "missing_file", f"function docs of {cls_name} not found")
            docs = []
            for rec in iter_jsonl(fpath):
                if rec.error is not None:
                    raise rec.error
                docs.append(rec.data)
            self._docs[key] = self._hinted(qid, docs, record)
        return self._docs[key]

    def _language_hint_key(self, qid: str) -> str:
        from bfcl_eval.utils import extract_test_category_from_id, is_java, is_js

        cat = extract_test_category_from_id(qid)
        return "java" if is_java(cat) else "js" if is_js(cat) else "python"

    # ---- conversion ------------------------------------------------------------------------------------

    def _tool(self, doc: dict[str, Any], record: RawRecord) -> dict[str, Any]:
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str) or not isinstance(doc.get("parameters"), dict):
            raise record.invalid("bad_function_doc", f"function doc without a name or parameters: {json.dumps(doc)[:120]}")
        tool = function_tool(doc["name"], doc.get("description", ""), cast_bfcl_schema(doc["parameters"], self._type_map))
        if "response" in doc:
            tool["function"]["response"] = doc["response"]
        return tool

    def _hinted(self, entry_id: str, docs: list[dict[str, Any]], record: RawRecord) -> list[dict[str, Any]]:
        try:
            return self._add_hints([{"id": entry_id, "function": docs}])[0]["function"]
        except (KeyError, TypeError, AttributeError) as e:
            raise record.invalid("bad_function_doc", f"bfcl-eval could not process the function docs: {type(e).__name__}: {e}") from None

    def convert(self, record: RawRecord) -> Task:
        entry = record.data["entry"]
        if not isinstance(entry, dict):
            raise record.invalid("not_an_object", f"expected a JSON object, got {type(entry).__name__}")
        cat = record.data["category"]
        if cat in MULTI_TURN:
            return self._multi(record, entry, cat)
        return self._single(record, entry, cat)

    def _single(self, record: RawRecord, entry: dict[str, Any], cat: str) -> Task:
        require_keys(RawRecord(record.file, record.row, entry), ("id", "question", "function"))
        qid = str(entry["id"])
        turns = entry["question"]
        if not isinstance(turns, list) or len(turns) != 1 or not isinstance(turns[0], list) or not turns[0]:
            raise record.invalid("bad_question", "a single-turn entry needs 'question' = [[messages...]] with one non-empty turn")
        messages = turns[0]
        if any(not isinstance(m, dict) or not isinstance(m.get("content"), str) or m.get("role") not in ("system", "user", "assistant") for m in messages):
            raise record.invalid("bad_question", "every message needs a role (system/user/assistant) and string content")
        if messages[-1]["role"] != "user":
            raise record.invalid("bad_question", f"the turn ends with a {messages[-1]['role']!r} message, not the user request")
        if not isinstance(entry["function"], list) or (not entry["function"] and cat not in NO_POSSIBLE_ANSWER):
            raise record.invalid("bad_function_doc", "'function' must be a non-empty list of function docs")
        shipped = copy.deepcopy(entry["function"])  # what bfcl-eval's evaluator hands its AST checker
        docs = self._hinted(qid, entry["function"], record)  # the entry was just decoded: hinting it in place is safe
        tools = [self._tool(doc, record) for doc in docs]
        names = [t["function"]["name"] for t in tools]
        if len(set(names)) != len(names):
            raise record.skip("duplicate_tool_name", f"function names repeat: {sorted(n for n in set(names) if names.count(n) > 1)}")

        possible: list[dict[str, Any]] = []
        tags: dict[str, Any] = {"category": cat}
        gold: list[Any] | None = [[]] if cat in ("irrelevance", "live_irrelevance") else None  # [[]]: no call expected
        if cat not in NO_POSSIBLE_ANSWER:
            answer = record.data["answer"]
            if answer is None:
                raise record.invalid("missing_possible_answer", f"no entry with id {qid!r} in {record.data['answer_file']}")
            possible = answer.get("ground_truth")
            if not isinstance(possible, list) or not possible:
                raise record.invalid("bad_possible_answer", f"possible answer of {qid!r} is not a non-empty list")
            relaxed: list[str] = []
            try:
                gold = [[gold_calls(possible, shipped, tools, cat, relaxed)]]
            except GoldProblem as e:
                raise record.skip(e.reason, e.detail) from None
            except ValueError as e:
                raise record.invalid("bad_possible_answer", str(e)) from None
            for line in relaxed:
                add_repair(tags, "gold_schema_relaxed", line)
        return Task(
            id=qid,
            source="bfcl_single",
            query=messages[-1]["content"],
            context=[{"role": m["role"], "content": m["content"]} for m in messages[:-1]],
            env={"kind": "schema", "tools": tools},
            ground_truth={"category": cat, "id": qid, "functions": shipped, "possible_answer": possible},
            gold=gold,
            tags=tags,
        )

    def _multi(self, record: RawRecord, entry: dict[str, Any], cat: str) -> Task:
        require_keys(RawRecord(record.file, record.row, entry), ("id", "question", "initial_config", "involved_classes"))
        qid = str(entry["id"])
        classes = entry["involved_classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes) or not classes:
            raise record.invalid("bad_field", "'involved_classes' must be a non-empty list of class names")
        docs: list[dict[str, Any]] = []
        for cls_name in classes:
            docs.extend(self._class_docs(record.data["dir"], cls_name, qid, record))
        by_name = {d["name"]: d for d in docs}
        order = {d["name"]: list(d.get("parameters", {}).get("properties", {})) for d in docs}

        missed = entry.get("missed_function") or {}
        if not isinstance(missed, dict):
            raise record.invalid("bad_field", "'missed_function' must map a turn index to function names")
        hidden = {n for names in missed.values() for n in names}
        unknown = sorted(hidden - set(by_name))
        if unknown:
            raise record.invalid("bad_field", f"missed_function names unknown function(s) {unknown}")
        turn_tools = {str(int(t)): [self._tool(by_name[n], record) for n in names] for t, names in missed.items()}
        tools = [self._tool(d, record) for d in docs if d["name"] not in hidden]

        turns = entry["question"]
        if not isinstance(turns, list) or not turns:
            raise record.invalid("bad_question", "'question' must be a non-empty list of turns")
        texts = []
        for i, turn in enumerate(turns):
            if not isinstance(turn, list):
                raise record.invalid("bad_question", f"turn {i} is not a list of messages")
            if not turn:
                if str(i) not in turn_tools or i == 0:
                    raise record.invalid("bad_question", f"turn {i} is empty but reveals no functions")
                texts.append(self._more_functions_prompt)  # what bfcl-eval says when it reveals the held-out functions
                continue
            if len(turn) != 1 or not isinstance(turn[0], dict) or turn[0].get("role") != "user" or not isinstance(turn[0].get("content"), str):
                raise record.invalid("bad_question", f"turn {i} must hold exactly one user message")
            texts.append(turn[0]["content"])

        answer = record.data["answer"]
        if answer is None:
            raise record.invalid("missing_possible_answer", f"no entry with id {qid!r} in {record.data['answer_file']}")
        gt = answer.get("ground_truth")
        if not isinstance(gt, list) or len(gt) != len(turns) or not all(isinstance(t, list) for t in gt):
            raise record.invalid("bad_possible_answer", f"ground truth must be one list of call strings per turn ({len(turns)} turns)")
        gold = []
        for t, call_strings in enumerate(gt):
            steps = []
            for s in call_strings:
                try:
                    name, args, kwargs = parse_call_string(s)
                    if name not in order:
                        raise ValueError(f"call string {s!r} names unknown function {name!r}")
                    steps.append([{"name": name, "arguments": bind_arguments(name, order[name], args, kwargs)}])
                except ValueError as e:
                    raise record.invalid("bad_possible_answer", f"turn {t}: {e}") from None
            gold.append(steps)

        long_context = "long_context" in cat or "composite" in cat
        tags: dict[str, Any] = {"category": cat}
        if entry.get("excluded_function"):
            tags["excluded_function"] = entry["excluded_function"]
        return Task(
            id=qid,
            source="bfcl_multi",
            query=texts[0],
            follow_up=texts[1:],
            env={
                "kind": "bfcl",
                "initial_config": entry["initial_config"],
                "involved_classes": classes,
                "tools": tools,
                "turn_tools": turn_tools,
                "long_context": long_context,
            },
            ground_truth={
                "category": cat,
                "id": qid,
                "initial_config": entry["initial_config"],
                "involved_classes": classes,
                "ground_truth": gt,
                "long_context": long_context,
            },
            gold=gold,
            tags=tags,
        )
