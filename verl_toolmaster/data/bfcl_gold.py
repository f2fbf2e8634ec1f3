"""BFCL single-turn gold calls: one concrete call per ``possible_answer`` entry that both the task's schema
environment and bfcl-eval's own AST checker accept.

BFCL lists acceptable values per argument (``""`` = "may be omitted"). The gold takes the minimal acceptable call:
an optional argument that may be omitted is left out; otherwise the first acceptable value that the tool's JSON
schema and bfcl-eval's checker both accept is used. Besides BFCL's own values this tries the enum member that
bfcl-eval's case/punctuation-insensitive string comparison equates with one (``"horror"`` -> ``"Horror"``), then an
explicit ``None`` or ``""`` when those are listed. Java/JavaScript arguments are strings in source syntax (bfcl-eval's
language hint) that bfcl-eval's type converters read back as the acceptable value (``5L``, ``new int[]{1, 2}``,
``["a", "b"]``).

The calls are then checked as a whole: against the schema environment's validation (:class:`GoldProblem`
``gold_call_violates_schema`` when BFCL's answer contradicts its own function doc, e.g. a value outside the
enum) and with bfcl-eval's ``ast_checker`` on the docs as shipped, as bfcl-eval's evaluator calls it
(``gold_rejected_by_bfcl_checker`` when no written value could pass, e.g. a Java ``ArrayList<any>`` whose
possible answer holds numbers, which bfcl-eval's converter can only read back as strings).
"""

from __future__ import annotations

import json
from typing import Any

from ..envs.schemas import json_schema

SCHEMA_REASON = "gold_call_violates_schema"
CHECKER_REASON = "gold_rejected_by_bfcl_checker"


class GoldProblem(Exception):
    """The possible answer yields no gold call a schema-following model could make and BFCL would accept."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason  # prepare's skip reason
        self.detail = detail  # which call / argument and what is wrong


class NoStringForm(ValueError):
    """A Java/JavaScript value with no source-syntax spelling for its declared type."""


def language_of(category: str) -> str:
    """``"java"``, ``"javascript"`` or ``"python"``, as bfcl-eval tells them apart (``is_java`` / ``is_js``)."""
    from bfcl_eval.utils import is_java, is_js

    return "java" if is_java(category) else "javascript" if is_js(category) else "python"


# ---------------------------------------------------------------- choosing acceptable values


def _resolve(value: Any) -> Any:
    """A chosen value with any nested ``{key: [acceptable values]}`` objects (also inside lists) resolved."""
    if isinstance(value, dict):
        return {k: v for k, (keep, v) in ((k, _first(vals)) for k, vals in value.items()) if keep}
    if isinstance(value, list):
        return [_resolve(v) for v in value]
    return value


def _first(values: Any) -> tuple[bool, Any]:
    """Nested acceptable values: omitted when ``""`` is allowed, else the first that is not None."""
    if not isinstance(values, list):
        return True, _resolve(values)
    if "" in values:
        return False, None
    for v in values:
        if v is not None:
            return True, _resolve(v)
    return False, None


def _candidates(values: list[Any], schema: dict[str, Any]) -> list[Any]:
    """Acceptable values in preference order (see the module docstring); ``""`` and None come last."""
    from verl_toolmaster.reward.scorers.bfcl import ast_checker_module

    standardize = ast_checker_module().standardize_string
    enum = [m for m in schema.get("enum") or () if isinstance(m, str)]
    out: list[Any] = []
    for v in values:
        if v is None or v == "":
            continue
        out.append(_resolve(v))
        if isinstance(v, str) and enum and v not in enum:
            out += [m for m in enum if standardize(m) == standardize(v)]
    out += [v for v in (None, "") if v in values]
    return out


def _accepted_by_checker(doc: dict[str, Any], name: str, written: Any, values: list[Any], language: str) -> bool:
    """Whether bfcl-eval's checker accepts ``written`` for parameter ``name`` of ``doc`` (the other parameters
    left out of the question)."""
    from verl_toolmaster.reward.scorers.bfcl import MODEL_KEY, ast_checker_module, checker_language

    prop = (doc.get("parameters") or {}).get("properties", {}).get(name)
    if prop is None:
        return False
    one = {"name": doc["name"], "parameters": {"type": "dict", "properties": {name: prop}, "required": []}}
    try:
        verdict = ast_checker_module().simple_function_checker(
            one, {doc["name"]: {name: written}}, {doc["name"]: {name: values}}, checker_language(language), MODEL_KEY
        )
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, NotImplementedError):
        return False
    return bool(verdict["valid"])


def choose_arguments(
    params: dict[str, list[Any]], properties: dict[str, dict[str, Any]], doc: dict[str, Any], language: str
) -> dict[str, Any]:
    """One argument object for a possible-answer entry: per parameter, the first acceptable value (in one of its
    spellings, see :func:`spellings`) that the environment's JSON schema (``properties``) and bfcl-eval's checker
    (on the shipped ``doc``) both accept; when none is, the first one, left for the whole-call check to report."""
    from jsonschema import Draft202012Validator

    required = frozenset((doc.get("parameters") or {}).get("required") or ())
    args: dict[str, Any] = {}
    for name, values in params.items():
        values = values if isinstance(values, list) else [values]
        if "" in values and name not in required:
            continue  # the minimal correct call leaves it out
        schema = properties.get(name) or {}
        validator = Draft202012Validator(schema)
        written = [w for c in _candidates(values, schema) for w in spellings(c, doc, name, language)]
        fitting = [w for w in written if validator.is_valid(w) and _accepted_by_checker(doc, name, w, values, language)]
        if fitting or written:  # (a chosen value may itself be None)
            args[name] = (fitting or written)[0]
    return args


def spellings(value: Any, doc: dict[str, Any], name: str, language: str) -> list[Any]:
    """How a model writes ``value`` for parameter ``name``: the value itself (Python), or its Java/JavaScript
    source-syntax strings for the declared type (a whole number also as ``30.0``, which a type-less ``any``
    parameter compares as text); empty when the value has none."""
    if language == "python":
        return [value]
    prop = (doc.get("parameters") or {}).get("properties", {}).get(name) or {}
    items = prop.get("items") if isinstance(prop.get("items"), dict) else {}
    literal = java_literal if language == "java" else js_literal
    out = []
    for v in [value] + ([repr(value)] if isinstance(value, float) and value.is_integer() else []):
        try:
            out.append(literal(v, str(prop.get("type", "any")), items.get("type")))
        except NoStringForm:
            continue
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------- Java / JavaScript source literals

_JAVA_ARRAY_ELEMENT = {"String": "String", "integer": "int", "long": "long", "double": "double", "float": "float",
                       "boolean": "boolean", "char": "char", "byte": "byte", "short": "short"}


def _number(value: int | float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else repr(value)


def _java_scalar(value: Any, kind: str | None) -> str:
    """How bfcl-eval's ``java_type_converter`` (``kind`` given) reads a scalar back."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if kind == "long":
            return f"{_number(value)}L"
        if kind == "float":
            return f"{_number(value)}f"
        return _number(value)
    if isinstance(value, str):
        return value
    raise NoStringForm(f"no Java spelling of {type(value).__name__} as {kind}")


def _java_value(value: Any) -> str:
    """How bfcl-eval's ``parse_java_value`` (no declared type) reads a scalar back: strings in double quotes."""
    if isinstance(value, str):
        return f'"{value}"'
    return _java_scalar(value, None)


def java_literal(value: Any, kind: str, item_kind: str | None) -> str:
    """``value`` of BFCL Java type ``kind`` in the string form bfcl-eval's ``java_type_converter`` parses."""
    if isinstance(value, str):
        return value  # a string, or a variable name standing for an object (BFCL accepts those as is)
    if isinstance(value, list) and kind == "Array":
        element = _JAVA_ARRAY_ELEMENT.get(item_kind or "", "Object")
        parts = [_java_scalar(v, item_kind) if item_kind else _java_value(v) for v in value]
        return f"new {element}[]{{{', '.join(parts)}}}"
    if isinstance(value, list) and kind == "ArrayList":
        if not value:
            return "new ArrayList<>()"
        quoted = item_kind in ("String", "char")
        parts = [f'"{v}"' if quoted else _java_scalar(v, item_kind) if item_kind else _java_value(v) for v in value]
        return f"new ArrayList<>(Arrays.asList({', '.join(parts)}))"
    if isinstance(value, dict) and kind == "HashMap":
        if not value:
            return "new HashMap<>()"
        puts = " ".join(f'put("{k}", {_java_value(v)});' for k, v in value.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    if isinstance(value, (list, dict)):
        raise NoStringForm(f"no Java spelling of {type(value).__name__} as {kind}")
    return _java_scalar(value, kind)


def _js_value(value: Any, kind: str | None = None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return f"{_number(value)}n" if kind == "Bigint" else _number(value)
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list):
        return "[" + ", ".join(_js_value(v, kind) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_js_value(v)}" for k, v in value.items()) + "}"
    raise NoStringForm(f"no JavaScript spelling of {type(value).__name__}")


def js_literal(value: Any, kind: str, item_kind: str | None) -> str:
    """``value`` of BFCL JavaScript type ``kind`` in the string form bfcl-eval's ``js_type_converter`` parses."""
    if isinstance(value, str):
        return value  # strings are read as is; a variable name stands for an object
    if isinstance(value, list) and kind == "array":
        return "[" + ", ".join(_js_value(v, item_kind) for v in value) + "]"
    if isinstance(value, dict) and kind == "dict":
        return _js_value(value)
    if isinstance(value, (list, dict)):
        raise NoStringForm(f"no JavaScript spelling of {type(value).__name__} as {kind}")
    return _js_value(value, kind)


# ---------------------------------------------------------------- the gold calls of one task


def gold_calls(
    possible_answer: list[Any], docs: list[dict[str, Any]], tools: list[dict[str, Any]], category: str, relaxed: list[str] | None = None
) -> list[dict[str, Any]]:
    """The gold calls of a single-turn task. ``docs`` are BFCL's function docs as shipped (no language hints:
    what bfcl-eval's evaluator hands its checker), ``tools`` the environment's tools built from the hinted docs.

    With a ``relaxed`` list, a gold call that contradicts the doc shown to the model (a value outside its enum, an
    undocumented parameter) keeps its record when bfcl-eval's checker accepts it, as BFCL then counts the record:
    the broken constraint of that tool is relaxed in ``tools`` (replaced in place) and described in ``relaxed``.
    Raises ValueError for a malformed possible answer and :class:`GoldProblem` when no call passes both checks."""
    from jsonschema import Draft202012Validator

    from verl_toolmaster.envs.schema_env import validation_problems
    from verl_toolmaster.reward.scorers.bfcl import MODEL_KEY, ast_checker_module, checker_language

    by_doc = {d["name"]: d for d in docs}
    by_tool = {t["function"]["name"]: t for t in tools}
    language = language_of(category)
    calls = []
    for entry in possible_answer:
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ValueError(f"possible-answer entry is not a single {{function: arguments}} object: {json.dumps(entry)[:120]}")
        ((name, params),) = entry.items()
        if not isinstance(params, dict):
            raise ValueError(f"possible answer for {name!r}: arguments are not an object")
        if name not in by_doc or name not in by_tool:
            raise ValueError(f"possible answer calls unknown function {name!r}")
        schema = json_schema(by_tool[name]["function"].get("parameters"))  # what the schema environment validates
        args = choose_arguments(params, schema.get("properties") or {}, by_doc[name], language)
        problems = validation_problems(Draft202012Validator(schema), args)
        if problems and relaxed is not None:
            from .schemas import relax_for_gold

            (tool,), _, lines = relax_for_gold([{"name": name, "arguments": args}], [by_tool[name]])
            tools[tools.index(by_tool[name])] = by_tool[name] = tool
            relaxed.extend(lines)
            problems = validation_problems(Draft202012Validator(json_schema(tool["function"].get("parameters"))), args)
        if problems:
            raise GoldProblem(SCHEMA_REASON, f"{name}: {'; '.join(problems)}")
        calls.append({"name": name, "arguments": args})

    checker = ast_checker_module()
    output = [{c["name"]: c["arguments"]} for c in calls]
    try:
        verdict = checker.ast_checker(docs, output, possible_answer, checker_language(category), category, MODEL_KEY)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, NotImplementedError) as e:
        raise GoldProblem(CHECKER_REASON, f"bfcl-eval's checker raised {type(e).__name__}: {e}") from None
    if not verdict["valid"]:
        raise GoldProblem(CHECKER_REASON, f"{verdict.get('error_type')}: {' '.join(map(str, verdict.get('error', [])))[:300]}")
    return calls
