"""ToolHop: normalised final-answer match; per-hop sub-answer hits as a diagnostic."""

from __future__ import annotations

from typing import Any

from .base import Episode, Scorer, ScoreResult, register_scorer
from .matching import answers_match, contains_phrase, normalize_text


@register_scorer("toolhop")
class ToolHopScorer(Scorer):
    """``answer`` is 1 when the final ``<answer>`` equals the gold answer after normalisation, else 0.

    Ground truth: ``{"answer": str, "answer_type": str, "sub_answers": {sub_question: answer}}``.
    Numbers compare numerically ("324.0" == "324" == "324."), text after case, accent, punctuation and
    whitespace folding (:func:`~.matching.normalize_text`). No partial credit: the hops are a chain, and a
    containment rule ("...the answer is 15 or 16") would reward listing candidates.
    """

    detail_keys = ("toolhop/sub_answer_hits", "toolhop/hops")

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        gold = ground_truth["answer"]
        if not isinstance(gold, str):
            raise ValueError(f"toolhop ground truth 'answer' must be a string, got {type(gold).__name__}")
        sub_answers = ground_truth.get("sub_answers") or {}
        details = {"toolhop/hops": float(len(sub_answers)), "toolhop/sub_answer_hits": self._sub_hits(sub_answers, episode)}
        predicted = episode.final_answer
        if predicted is None or not predicted.strip():
            return ScoreResult(0.0, "no_answer", details)
        if answers_match(gold, predicted):
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(0.0, "wrong_answer", details)

    @staticmethod
    def _sub_hits(sub_answers: dict[str, str], episode: Episode) -> float:
        """Fraction of hop answers that surfaced anywhere in the trajectory (observations or answers)."""
        if not sub_answers:
            return 0.0
        texts = [str(c.get("text", "")) for c in episode.calls] + [a for a in episode.answers if a]
        tokens = normalize_text("\n".join(texts)).split()
        hits = sum(contains_phrase(tokens, str(a)) for a in sub_answers.values())
        return hits / len(sub_answers)
