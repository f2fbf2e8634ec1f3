"""Python call strings (``f(1, b='x')``) <-> name + arguments, shared by the envs, data adapters and eval.

Gold traces of ToolHop and BFCL are stored as Python call strings; BFCL's checker consumes them too.
Parsing uses :mod:`ast` and only accepts literal arguments, so nothing is ever evaluated.

Real API schemas name parameters ``from``, ``in``, ``class``, ``lambda`` or ``max-results``; such names cannot
be written as ``name=value``, so :func:`format_call` passes them in one trailing ``**{'from': 1}`` literal
dict, which :func:`parse_call_string` reads back.
"""

from __future__ import annotations

import ast
import keyword
import unicodedata
from typing import Any


def parse_call_string(s: str) -> tuple[str, list[Any], dict[str, Any]]:
    """``"f(1, b='x')"`` -> ``("f", [1], {"b": "x"})``. Raises ``ValueError`` naming the call on bad input."""
    try:
        tree = ast.parse(s.strip(), mode="eval")
    except SyntaxError as e:
        raise ValueError(f"call string {s!r} is not valid Python: {e.msg}") from None
    node = tree.body
    if not isinstance(node, ast.Call):
        raise ValueError(f"call string {s!r} is not a single function call")
    name = _dotted_name(node.func)
    if name is None:
        raise ValueError(f"call string {s!r}: the callee must be a (dotted) name")
    args = [_literal(a, s) for a in node.args]
    kwargs: dict[str, Any] = {}
    for kw in node.keywords:
        if kw.arg is not None:
            items = {kw.arg: _literal(kw.value, s)}
        else:  # ``**{'from': 1}``: parameters whose names are keywords or not identifiers
            items = _literal(kw.value, s)
            if not isinstance(items, dict) or not all(isinstance(k, str) for k in items):
                raise ValueError(f"call string {s!r}: **kwargs unpacking needs a literal dict with string keys")
        repeated = sorted(set(items) & set(kwargs))
        if repeated:
            raise ValueError(f"call string {s!r}: argument(s) {repeated} given twice")
        kwargs.update(items)
    return name, args, kwargs


def bind_arguments(name: str, params: list[str], args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Merge positional ``args`` (in ``params`` order) and ``kwargs`` into one keyword dict."""
    if len(args) > len(params):
        raise ValueError(f"call to {name!r} passes {len(args)} positional arguments but the tool has only {len(params)} parameters {params}")
    bound = dict(zip(params, args))
    clash = sorted(set(bound) & set(kwargs))
    if clash:
        raise ValueError(f"call to {name!r} passes {clash} both positionally and by keyword")
    bound.update(kwargs)
    return bound


def format_call(name: str, arguments: dict[str, Any]) -> str:
    """``("f", {"b": "x", "from": 1})`` -> ``"f(b='x', **{'from': 1})"``, the inverse of :func:`parse_call_string`.

    Parameters named like identifiers are written ``k=v``; the rest (Python keywords such as ``if`` or ``from``,
    names such as ``max-results`` or ``""``) go into one trailing ``**{...}`` literal. Raises ``ValueError``
    naming the tool when ``name`` is not a (dotted) identifier: no call string can carry it.
    """
    if not is_call_name(name):
        raise ValueError(f"tool name {name!r} cannot be written as a Python call string (not a dotted identifier)")
    plain = [f"{k}={v!r}" for k, v in arguments.items() if is_keyword_name(k)]
    other = {k: v for k, v in arguments.items() if not is_keyword_name(k)}
    if other:
        plain.append(f"**{other!r}")
    return f"{name}({', '.join(plain)})"


def is_keyword_name(name: Any) -> bool:
    """True when ``name=value`` is valid Python and reads back as ``name``: an identifier that is not a keyword
    (``if``, ``from``, ...) and is NFKC-normal (the parser folds e.g. the ligature ``ﬁ`` to ``fi``)."""
    return (
        isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) and unicodedata.normalize("NFKC", name) == name
    )


def is_call_name(name: Any) -> bool:
    """True when ``name`` can be the callee of a call string: identifiers joined by dots, none a keyword."""
    return isinstance(name, str) and bool(name) and all(is_keyword_name(part) for part in name.split("."))


def _dotted_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted_name(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _literal(node: ast.expr, s: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):
        raise ValueError(f"call string {s!r}: argument {ast.unparse(node)!r} is not a literal") from None
