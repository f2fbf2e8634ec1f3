"""Call matching for sources whose tools cannot be executed: API-Bank, ToolRL (xLAM-style) and RoTBench.

The model's *actions* are its execute-phase calls that the environment accepted (``Episode.actions``), with
canonical names and arguments; trials never count. Rules and partial credit are documented in docs/reward.md.
"""

from __future__ import annotations

from typing import Any

from .base import Episode, Scorer, ScoreResult, register_scorer
from .matching import best_assignment, values_match


def _gold_calls(raw: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    if not isinstance(raw, list):
        raise ValueError(f"{where} must be a list of {{'name', 'arguments'}} calls, got {type(raw).__name__}")
    out = []
    for i, call in enumerate(raw):
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) or not isinstance(call.get("arguments"), dict):
            raise ValueError(f"{where}[{i}] must be {{'name': str, 'arguments': dict}}, got {call!r}")
        out.append((call["name"], call["arguments"]))
    return out


def _pred_calls(episode: Episode) -> list[tuple[str, dict[str, Any]]]:
    return [(c["name"], c["arguments"]) for c in episode.actions()]


def _answered(episode: Episode) -> bool:
    return any(a is not None and a.strip() for a in episode.answers)


# ---------------------------------------------------------------- API-Bank / ToolRL


def call_levels(gold: tuple[str, dict], pred: tuple[str, dict]) -> tuple[float, float, float]:
    """(name, parameter-name Jaccard, value accuracy) of one predicted call against one gold call.

    Zero across the board when the names differ. Value accuracy = share of the gold parameters that the
    prediction filled with a matching value (1 when the gold call has none and the prediction adds none).
    """
    (g_name, g_args), (p_name, p_args) = gold, pred
    if g_name != p_name:
        return 0.0, 0.0, 0.0
    g_keys, p_keys = set(g_args), set(p_args)
    union = g_keys | p_keys
    jaccard = len(g_keys & p_keys) / len(union) if union else 1.0
    if g_keys:
        values = sum(1 for k in g_keys & p_keys if values_match(g_args[k], p_args[k])) / len(g_keys)
    else:
        values = 1.0 if not p_keys else 0.0
    return 1.0, jaccard, values


@register_scorer("apibank", "toolrl")
class CallMatchScorer(Scorer):
    """ToolRL-style graded call matching, normalised to [0, 1].

    Ground truth: ``{"calls": [{"name", "arguments"}], "response": str | None}``. Predicted actions are
    matched one-to-one to gold calls (same name only, order-free, best total). A matched pair scores
    ``(1 + key_jaccard + value_accuracy) / 3``; ``answer = sum(pair scores) / max(#gold, #actions)``, so
    missing calls and extra calls both cost. With no gold calls (a plain reply is expected) the answer is
    1 for an ``<answer>`` without any action, 0 otherwise; the reply text itself is not compared.
    """

    detail_keys = ("calls/name_match", "calls/param_names", "calls/param_values", "calls/exact", "calls/actions")

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        gold = _gold_calls(ground_truth["calls"], "ground_truth.calls")
        pred = _pred_calls(episode)
        details = {k: 0.0 for k in self.detail_keys}
        details["calls/actions"] = float(len(pred))
        if not gold:
            for k in ("calls/name_match", "calls/param_names", "calls/param_values", "calls/exact"):
                details[k] = 1.0 if not pred else 0.0
            if pred:
                return ScoreResult(0.0, "unexpected_call", details)
            if not _answered(episode):
                return ScoreResult(0.0, "no_answer", details)
            return ScoreResult(1.0, "correct", details)
        if not pred:
            return ScoreResult(0.0, "no_call", details)
        levels = {}
        for gi, pj, _ in best_assignment(gold, pred, lambda g, p: sum(call_levels(g, p))):
            levels[gi] = call_levels(gold[gi], pred[pj])
        n = len(gold)
        details["calls/name_match"] = sum(lv[0] for lv in levels.values()) / n
        details["calls/param_names"] = sum(lv[1] for lv in levels.values()) / n
        details["calls/param_values"] = sum(lv[2] for lv in levels.values()) / n
        details["calls/exact"] = sum(1 for lv in levels.values() if lv == (1.0, 1.0, 1.0)) / n
        answer = sum(sum(lv) / 3 for lv in levels.values()) / max(n, len(pred))
        if answer >= 1.0 - 1e-12:
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(answer, "partial_match" if answer > 0 else "wrong_call", details)


# ---------------------------------------------------------------- RoTBench

# RoTBench's evaluate.py does not compare the content of these two (free-text) tools.
DEFAULT_FREE_TEXT_TOOLS = ("finish", "ask_to_user")


def rotbench_levels(gold: tuple[str, dict], pred: tuple[str, dict], free_text: frozenset[str]) -> tuple[int, int, int]:
    """RoTBench's three nested levels for one call: tool selection, parameter identification, content filling.

    TS: same tool name. PI: TS and identical parameter-name sets. CF: PI and equal values, after dropping the
    parameters whose gold value is the string "None" (RoTBench's convention for "leave unset"); the content of
    free-text tools (finish, ask_to_user) is not compared.
    """
    (g_name, g_args), (p_name, p_args) = gold, pred
    if g_name != p_name:
        return 0, 0, 0
    if set(g_args) != set(p_args):
        return 1, 0, 0
    if g_name in free_text:
        return 1, 1, 1
    kept = [k for k, v in g_args.items() if v != "None"]
    return 1, 1, int(all(values_match(g_args[k], p_args[k]) for k in kept))


@register_scorer("rotbench")
class RoTBenchScorer(Scorer):
    """RoTBench (tool selection / parameter identification / content filling) with partial credit.

    Ground truth: ``{"alternatives": [[{"name", "arguments"}], ...], "level": str, "turn": "first"|"third"}``,
    optionally ``"free_text_tools": [names]`` (default finish, ask_to_user; perturbed levels rename them).
    For each alternative, actions are matched to its calls (best total of TS+PI+CF); TS, PI and CF are the
    means over the alternative's calls, and ``answer = (TS + PI + CF) / 3 * len(alt) / max(len(alt), #actions)``
    (extra actions cost). The best alternative counts; its TS/PI/CF are reported.
    """

    detail_keys = ("rotbench/tool_selection", "rotbench/parameter_identification", "rotbench/content_filling")

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        alternatives = ground_truth["alternatives"]
        if not isinstance(alternatives, list) or not alternatives:
            raise ValueError("rotbench ground truth 'alternatives' must be a non-empty list of call lists")
        alts = [_gold_calls(a, f"ground_truth.alternatives[{i}]") for i, a in enumerate(alternatives)]
        free_text = frozenset(ground_truth.get("free_text_tools") or DEFAULT_FREE_TEXT_TOOLS)
        pred = _pred_calls(episode)
        zero = {k: 0.0 for k in self.detail_keys}
        if not pred:
            return ScoreResult(0.0, "no_call", zero)
        best = (-1.0, zero)
        for alt in alts:
            if not alt:
                continue
            matched = best_assignment(alt, pred, lambda g, p: float(sum(rotbench_levels(g, p, free_text))))
            levels = [rotbench_levels(alt[gi], pred[pj], free_text) for gi, pj, _ in matched]
            ts, pi, cf = (sum(lv[k] for lv in levels) / len(alt) for k in range(3))
            answer = (ts + pi + cf) / 3 * len(alt) / max(len(alt), len(pred))
            if answer > best[0]:
                best = (answer, dict(zip(self.detail_keys, (ts, pi, cf))))
        answer, details = best
        if answer < 0:
            raise ValueError("rotbench ground truth has only empty alternatives")
        if answer >= 1.0 - 1e-12:
            return ScoreResult(1.0, "correct", details)
        return ScoreResult(answer, "partial_match" if answer > 0 else "wrong_call", details)
