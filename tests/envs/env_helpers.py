"""Helpers shared by the environment tests (imported as a plain module: pytest puts tests/envs on sys.path)."""

from __future__ import annotations

from typing import Any

from verl_toolmaster.envs.python_env import code_by_function


def toolhop_spec(row: dict[str, Any]) -> dict[str, Any]:
    """The python-env spec of one raw ToolHop record (what the data adapter produces)."""
    tools = [{"type": "function", "function": doc} for doc in row["tools"].values()]
    code = code_by_function(row["functions"])
    names = [t["function"]["name"] for t in tools]
    return {"kind": "python", "tools": tools, "code": {n: code[n] for n in names if n in code}}
