"""ToyWorld: the final answer must equal the result of the task's tool (normalised, numbers numerically)."""

from __future__ import annotations

from typing import Any

from .base import Episode, Scorer, ScoreResult, register_scorer
from .matching import answers_match


@register_scorer("toyworld")
class ToyWorldScorer(Scorer):
    """``answer`` is 1 when the last ``<answer>`` equals ``ground_truth["answer"]`` (see
    :func:`~.matching.answers_match`), else 0. Ground truth: ``{"answer": str, "level": int, "op": str}``.

    Details: ``toyworld/level`` (the task's difficulty, to split metrics) and ``toyworld/answer_seen`` (1 when the
    gold answer appeared in a successful call's result, i.e. the right call was made, whatever was answered).
    """

    detail_keys = ("toyworld/level", "toyworld/answer_seen")

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        gold = ground_truth.get("answer")
        if not isinstance(gold, str):
            raise ValueError(f"toyworld ground truth 'answer' must be a string, got {type(gold).__name__}")
        seen = any(c.get("ok") and _result_value(str(c.get("text", ""))) == gold for c in episode.calls)
        details = {"toyworld/level": float(ground_truth.get("level", 0)), "toyworld/answer_seen": float(seen)}
        predicted = episode.final_answer
        if predicted is None or not predicted.strip():
            return ScoreResult(0.0, "no_answer", details)
        if answers_match(gold, predicted):
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(0.0, "wrong_answer", details)


def _result_value(text: str) -> str | None:
    """The value of a ToyWorld result ``{"label": value}`` as text, or None for anything else."""
    import json

    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None
    if isinstance(obj, dict) and len(obj) == 1:
        return str(next(iter(obj.values())))
    return None
