"""ToyWorld: the final answer must equal the result of the task's tool (normalised, numbers numerically); on the
stateful levels the real final balances must also equal the target ones."""

from __future__ import annotations

import json
from typing import Any

from ...envs.toyworld import replay_accounts
from .base import Episode, Scorer, ScoreResult, register_scorer
from .matching import answers_match


@register_scorer("toyworld")
class ToyWorldScorer(Scorer):
    """``answer`` is 1 when the last ``<answer>`` equals ``ground_truth["answer"]`` (see
    :func:`~.matching.answers_match`), else 0. Ground truth: ``{"answer": str, "level": int, "op": str, "tool": str}``
    (``tool``, the tool that computes the answer, is optional: without it the target details are None).

    Details: ``toyworld/level`` (the task's difficulty, to split metrics), ``toyworld/answer_seen`` (1 when the gold
    answer appeared in a successful call's result, i.e. the right call was made, whatever was answered),
    ``toyworld/target_called`` (the target tool was called at all, trial or execute), and for the first call of the
    target: ``toyworld/first_call_real`` (its argument names are the tool's real ones) and
    ``toyworld/first_call_documented`` (they are the stale documented ones; only where the documentation is stale).
    The first-call details are None when the target was never called.

    Stateful tasks (levels 4-5) also give ``ground_truth["accounts"]``, the target final balances: the episode's
    execute calls are replayed on the spec's initial balances (trials ran on a fork and count for nothing) and
    ``toyworld/state_ok`` says whether the result equals the target; ``answer`` is 1 only with the right answer
    *and* the right final state (reason ``wrong_state`` otherwise), so damage a wrong call left is scored.
    """

    detail_keys = ("toyworld/level", "toyworld/answer_seen", "toyworld/target_called", "toyworld/first_call_real",
                   "toyworld/first_call_documented", "toyworld/state_ok")
    needs_env_spec = True

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        gold = ground_truth.get("answer")
        if not isinstance(gold, str):
            raise ValueError(f"toyworld ground truth 'answer' must be a string, got {type(gold).__name__}")
        seen = any(c.get("ok") and _result_value(str(c.get("text", ""))) == gold for c in episode.calls)
        details = {"toyworld/level": float(ground_truth.get("level", 0)), "toyworld/answer_seen": float(seen),
                   **_first_call(ground_truth.get("tool"), episode)}
        state_ok = True
        target = ground_truth.get("accounts")
        if target is not None:
            if not isinstance(target, dict) or episode.env_spec is None:
                raise ValueError("toyworld ground truth 'accounts' must be an object and the episode must carry the env spec")
            state_ok = replay_accounts(episode.env_spec, episode.calls) == target
            details["toyworld/state_ok"] = float(state_ok)
        predicted = episode.final_answer
        if predicted is None or not predicted.strip():
            return ScoreResult(0.0, "no_answer", details)
        if not answers_match(gold, predicted):
            return ScoreResult(0.0, "wrong_answer", details)
        if not state_ok:
            return ScoreResult(0.0, "wrong_state", details)
        return ScoreResult(1.0, "correct", details)


def _first_call(tool: Any, episode: Episode) -> dict[str, float]:
    """The target details: was the target called, and did its first call use the real or the documented names."""
    if not isinstance(tool, str):
        return {}
    calls = [c for c in episode.calls if c.get("name") == tool]
    out = {"toyworld/target_called": float(bool(calls))}
    spec = episode.env_spec or {}
    impl = (spec.get("impl") or {}).get(tool)
    schema = next((t["function"] for t in spec.get("tools") or [] if t.get("function", {}).get("name") == tool), None)
    if not calls or impl is None or schema is None:
        return out
    args = calls[0].get("arguments")
    names = set(args) if isinstance(args, dict) else None
    real = {p for p, _ in impl["params"]}
    documented = set(schema["parameters"]["properties"])
    out["toyworld/first_call_real"] = float(names == real)
    if documented != real:
        out["toyworld/first_call_documented"] = float(names == documented)
    return out


def _result_value(text: str) -> str | None:
    """The value of a ToyWorld result ``{"label": value}`` (a deposit's or transfer's: the balance it left on the
    account paid into) as text, or None for anything else."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(obj, dict) and len(obj) == 1:
        return str(next(iter(obj.values())))
    if isinstance(obj, dict) and "applied" in obj and "balance" in obj:  # a deposit: the account's new balance
        return str(obj["balance"])
    if isinstance(obj, dict) and isinstance(obj.get("balances"), dict) and obj.get("credited") in obj["balances"]:
        return str(obj["balances"][obj["credited"]])  # a transfer: the credited account's new balance
    return None
