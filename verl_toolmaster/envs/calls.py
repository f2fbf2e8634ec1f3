"""Python call strings (``f(1, b='x')``) <-> name + arguments, shared by the envs, data adapters and eval.

Gold traces of ToolHop and BFCL are stored as Python call strings; BFCL's checker consumes them too.
Parsing uses :mod:`ast` and only accepts literal arguments, so nothing is ever evaluated.
"""

from __future__ import annotations

import ast
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
        if kw.arg is None:
            raise ValueError(f"call string {s!r}: **kwargs unpacking is not supported")
        kwargs[kw.arg] = _literal(kw.value, s)
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
    """``("f", {"b": "x"})`` -> ``"f(b='x')"`` (keyword form, Python literals), the inverse of parsing."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"


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
