"""Kind ``python`` (ToolHop): tools shipped as Python source, executed in the shared sandbox pool.

Spec payload: ``{"kind": "python", "tools": [OpenAI function schemas], "code": {tool_name: source}}``.
Each source defines a function named like its tool; top-level "example usage" lines are dropped before it
runs. The source never runs in this process: calls go to the warm, confined workers of
:mod:`verl_toolmaster.envs.sandbox_pool`. Tools are stateless, so ``fork()`` shares everything.
"""

from __future__ import annotations

import ast
import json
import time
from typing import Any

from .base import Observation, ToolEnv, digest, register_env
from .sandbox_pool import SandboxPool, get_pool
from .schemas import tool_map


@register_env("python")
class PythonEnv(ToolEnv):
    """Tools whose implementation is untrusted Python source."""

    def __init__(self, spec: dict[str, Any], pool: SandboxPool | None = None):
        super().__init__(spec)
        where = f"python environment{' ' + repr(spec['id']) if 'id' in spec else ''}"
        self._tools = tool_map(spec.get("tools", []), where)
        code = spec.get("code")
        if not isinstance(code, dict):
            raise ValueError(f"{where}: 'code' must map tool names to Python source, got {type(code).__name__}")
        missing = sorted(set(self._tools) - set(code))
        if missing:
            raise ValueError(f"{where}: no source code for tools {missing}")
        bad = sorted(k for k, v in code.items() if not isinstance(v, str))
        if bad:
            raise ValueError(f"{where}: source code of tools {bad} is not a string")
        self._code: dict[str, str] = code
        self._pool = pool  # None: this process's shared pool, resolved at call time

    def tools(self) -> list[dict[str, Any]]:
        return list(self._tools.values())

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        args, err = self._checked(name, arguments, self._tools)
        if err is not None:
            return self._finish(err, started)
        try:
            json.dumps(args)
        except (TypeError, ValueError) as e:
            return self._finish(Observation(False, f"Error: arguments of {name!r} are not JSON values ({e}).", "bad_arguments"), started)
        res = await (self._pool or get_pool()).call(name, self._code[name], args)
        return self._finish(Observation(res["ok"], res["text"], res["error_kind"]), started)

    def fork(self) -> "PythonEnv":
        twin = PythonEnv.__new__(PythonEnv)
        ToolEnv.__init__(twin, self.spec)
        twin._tools, twin._code, twin._pool, twin.turn = self._tools, self._code, self._pool, self.turn
        return twin

    def positional_params(self, name: str) -> list[str]:
        """Parameter order of the Python function (ToolHop schemas list properties alphabetically)."""
        params = function_params(self._code.get(name, ""), name)
        return params if params is not None else super().positional_params(name)

    def fingerprint(self, name: str) -> str:
        return digest({"kind": self.kind, "code": self._code.get(name), "tool": self._tools.get(name)})


def function_params(source: str, name: str) -> list[str] | None:
    """Positional parameter names of top-level function ``name`` in ``source`` (parsed, never executed)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            return [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
    return None


def code_by_function(functions: list[str]) -> dict[str, str]:
    """ToolHop's ``functions`` list (one source per tool) -> {function name: source}, by each source's defs.

    A source defining several top-level functions is registered under each name; callers pick the names
    their schemas use. Raises ValueError naming the source that does not parse.
    """
    out: dict[str, str] = {}
    for i, src in enumerate(functions):
        try:
            tree = ast.parse(src)
        except SyntaxError as e:
            raise ValueError(f"function source #{i} does not parse: {e.msg} (line {e.lineno})") from None
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.setdefault(node.name, src)
    return out
