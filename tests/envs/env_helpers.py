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


def bfcl_entries(shared_data, category: str) -> list[dict[str, Any]]:
    """BFCL multi-turn question lines of ``category`` joined with their ground truth (``gt``)."""
    import json

    base = shared_data / "bfcl"
    questions = [json.loads(x) for x in (base / f"BFCL_v4_{category}.json").read_text().splitlines() if x.strip()]
    answers = {a["id"]: a["ground_truth"] for a in map(json.loads, (base / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines())}
    for q in questions:
        q["gt"] = answers[q["id"]]
    return questions


def bfcl_spec(shared_data, entry: dict[str, Any]) -> dict[str, Any]:
    """The bfcl-env spec of a multi-turn entry, following bfcl-eval's own rule: all docs of the involved
    classes, except ``missed_function`` ones, which appear at their turn."""
    import json

    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    docs = []
    for cls in entry["involved_classes"]:
        path = shared_data / "bfcl" / "multi_turn_func_doc" / MULTI_TURN_FUNC_DOC_FILE_MAPPING[cls]
        docs += [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    hidden = {name: int(turn) for turn, names in (entry.get("missed_function") or {}).items() for name in names}
    wrap = lambda d: {"type": "function", "function": d}  # noqa: E731
    turn_tools: dict[str, list] = {}
    for d in docs:
        if d["name"] in hidden:
            turn_tools.setdefault(str(hidden[d["name"]]), []).append(wrap(d))
    return {
        "kind": "bfcl",
        "initial_config": entry["initial_config"],
        "involved_classes": entry["involved_classes"],
        "tools": [wrap(d) for d in docs if d["name"] not in hidden],
        "turn_tools": turn_tools,
        "long_context": "long_context" in entry["id"],
    }
