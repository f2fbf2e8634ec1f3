"""What explains an arm's held-out accuracy, from verl's validation dumps (one JSON line per held-out task).

Each line carries the reward manager's fields (``acc``, ``trial_calls``, ``execute_calls``, ``tool_errors``,
``self_corrections``, ...) and the ``toyworld`` scorer's details (``toyworld/level``, ``toyworld/answer_seen``,
``toyworld/target_called``, ``toyworld/first_call_real``, ``toyworld/first_call_documented``), plus the prompt
(``input``) and the response (``output``) as text.
"""

from __future__ import annotations

import math
import re
import statistics
from typing import Any

# per-sample fields averaged as they are (None and missing values are left out of a mean)
MEANS = ("toyworld/answer_seen", "toyworld/target_called", "toyworld/first_call_real", "toyworld/first_call_documented",
         "format", "trial_calls", "execute_calls", "tool_errors", "self_corrections", "violations")
# why a held-out task was failed, in the order tested (the first that applies)
FAILURES = ("no_call", "wrong_tool", "call_failed", "wrong_answer")
# a tool call's name in a sample's output; call_names_in_prompt: the share of them the prompt's tools offer
_CALL_NAME = re.compile(r'"name": ("[^"]+")')


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def failure(sample: dict[str, Any]) -> str | None:
    """Why a failed task failed (None when it was solved or the dump lacks the target details):

    ``no_call`` no tool call at all; ``wrong_tool`` the task's tool was never called (other or unknown tools only);
    ``call_failed`` it was called but never successfully; ``wrong_answer`` its result was seen, the answer was wrong
    or missing."""
    if float(sample["acc"]) >= 1.0 or not finite(sample.get("toyworld/target_called")):
        return None
    if float(sample.get("trial_calls") or 0) + float(sample.get("execute_calls") or 0) == 0:
        return "no_call"
    if not sample["toyworld/target_called"]:
        return "wrong_tool"
    if not sample.get("toyworld/answer_seen"):
        return "call_failed"
    return "wrong_answer"


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over ``samples`` of what explains the accuracy: the right call made, the first call's parameter names,
    calls and trials per task, errors and recoveries, and the share of tasks failed for each reason."""
    out: dict[str, Any] = {"n": len(samples)}
    for k in MEANS:
        values = [float(s[k]) for s in samples if finite(s.get(k))]
        if values:
            out[k] = statistics.fmean(values)
    calls = [float(s["trial_calls"]) + float(s["execute_calls"]) for s in samples if finite(s.get("trial_calls")) and finite(s.get("execute_calls"))]
    if calls:
        out["calls_per_task"] = statistics.fmean(calls)
    if "trial_calls" in out:
        out["trials_per_task"] = out["trial_calls"]
    erred = [s for s in samples if finite(s.get("tool_errors")) and s["tool_errors"] > 0]
    if erred:
        out["solved_after_an_error"] = statistics.fmean(float(s["acc"]) for s in erred)  # recoveries that paid off
    named = [name in s.get("input", "") for s in samples for name in _CALL_NAME.findall(s.get("output", ""))]
    if named:
        out["call_names_in_prompt"] = statistics.fmean(named)
    reasons = [failure(s) for s in samples]
    if samples and any(finite(s.get("toyworld/target_called")) for s in samples):
        out["failures"] = {k: sum(r == k for r in reasons) / len(samples) for k in FAILURES}
    return out


def by_level(samples: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Samples grouped by ``toyworld/level`` ("1", "2", "3"), in level order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for s in samples:
        out.setdefault(str(int(s["toyworld/level"])), []).append(s)
    return dict(sorted(out.items()))


def mean_of(dicts: list[dict[str, Any]]) -> dict[str, Any]:
    """Key-wise mean of summaries (over seeds); nested dicts (the failure shares) likewise."""
    out: dict[str, Any] = {}
    for k in sorted({k for d in dicts for k in d}):
        values = [d[k] for d in dicts if k in d]
        out[k] = mean_of(values) if isinstance(values[0], dict) else statistics.fmean(values)
    return out
