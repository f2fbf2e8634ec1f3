"""The reward components derived from the agent loop's "toolmaster" record: format, trial, cost (docs/reward.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .config import ToolMasterRewardConfig

SAMPLED_PHASES = ("trial", "execute", "answer", "untagged")  # phase_spans kinds the policy sampled


@dataclass
class Components:
    """One trajectory's reward terms and the counts behind them."""

    answer: float  # task success from the scorer, in [0, 1]
    format: float  # protocol compliance, in [0, 1]
    trial: float  # usefulness of the trials, in [0, 1]
    cost: float  # calls and turns beyond the soft budgets, in [0, 1]
    correct: bool  # answer >= correct_threshold
    score: float  # the combined reward
    trial_precision: float  # share of trial calls whose tool was later executed successfully
    trial_coverage: float  # share of successfully executed tools that were trialled first
    trial_errors_avoided: int  # failed trial calls whose tool then executed successfully
    excess: int  # calls + assistant turns beyond their per-user-turn budgets


def format_score(record: dict[str, Any], cfg: ToolMasterRewardConfig) -> tuple[float, int]:
    """``max(0, 1 - violation_penalty * n)`` with n the total protocol violations the loop recorded."""
    n = int(sum(record["counts"]["violations"].values()))
    return max(0.0, 1.0 - cfg.violation_penalty * n), n


def trial_score(calls: list[dict[str, Any]]) -> tuple[float, float, float, int]:
    """Usefulness of the trials: F1 of precision (trials whose tool was later executed successfully) and
    coverage (successfully executed tools that were trialled before their first execution).

    A trial that failed and whose tool then executed successfully counts as useful too; that is the
    "trial exposed an error that execution then avoided" case, also reported on its own.
    Returns (trial, precision, coverage, errors_avoided); all zero without trials.
    """
    trials = [(i, c) for i, c in enumerate(calls) if c["phase"] == "trial"]
    if not trials:
        return 0.0, 0.0, 0.0, 0
    first_ok_exec: dict[str, int] = {}
    last_ok_exec: dict[str, int] = {}
    for i, c in enumerate(calls):
        if c["phase"] == "execute" and c["ok"]:
            first_ok_exec.setdefault(c["name"], i)
            last_ok_exec[c["name"]] = i
    useful = [(i, c) for i, c in trials if last_ok_exec.get(c["name"], -1) > i]
    precision = len(useful) / len(trials)
    first_trial: dict[str, int] = {}
    for i, c in trials:
        first_trial.setdefault(c["name"], i)
    probed = [t for t, i in first_ok_exec.items() if first_trial.get(t, len(calls)) < i]
    coverage = len(probed) / len(first_ok_exec) if first_ok_exec else 0.0
    errors_avoided = sum(1 for _, c in useful if not c["ok"])
    trial = 2 * precision * coverage / (precision + coverage) if precision and coverage else 0.0
    return trial, precision, coverage, errors_avoided


def cost_score(record: dict[str, Any], cfg: ToolMasterRewardConfig) -> tuple[float, int]:
    """``min(1, cost_per_excess * excess)``; excess sums, over user turns, the trial calls, execute calls and
    assistant turns beyond their budgets. Failed calls count: they cost a round trip like any other."""
    trial_calls: dict[int, int] = {}
    exec_calls: dict[int, int] = {}
    for c in record["calls"]:
        counter = trial_calls if c["phase"] == "trial" else exec_calls
        counter[c["turn"]] = counter.get(c["turn"], 0) + 1
    turns: dict[int, int] = {}
    for t in record["turns"]:
        turns[t["user_turn"]] = turns.get(t["user_turn"], 0) + 1
    excess = 0
    for n in trial_calls.values():
        excess += max(0, n - cfg.trial_call_budget)
    for n in exec_calls.values():
        excess += max(0, n - cfg.execute_call_budget)
    for n in turns.values():
        excess += max(0, n - cfg.turn_budget)
    return min(1.0, cfg.cost_per_excess * excess), excess


def untagged_fraction(record: dict[str, Any]) -> float:
    """Share of the policy's sampled tokens that carry no valid phase tag (from phase_spans)."""
    sampled = untagged = 0
    for phase, start, end in record["phase_spans"]:
        if phase in SAMPLED_PHASES:
            sampled += end - start
            if phase == "untagged":
                untagged += end - start
    return untagged / sampled if sampled else 0.0


def combine(answer: float, record: dict[str, Any] | None, cfg: ToolMasterRewardConfig) -> Components:
    """All terms and the score. Without a record (no protocol at all) format is 0 and trial/cost are 0."""
    answer = min(1.0, max(0.0, float(answer)))
    correct = answer >= cfg.correct_threshold
    if record is None:
        fmt, trial, precision, coverage, avoided, cost, excess = 0.0, 0.0, 0.0, 0.0, 0, 0.0, 0
    else:
        fmt, _ = format_score(record, cfg)
        trial, precision, coverage, avoided = trial_score(record["calls"])
        cost, excess = cost_score(record, cfg)
    score = (
        cfg.w_answer * answer
        + cfg.w_format * (fmt - 1.0)
        + cfg.w_trial * trial * answer * (1.0 if correct else 0.0)
        - cfg.w_cost * cost
    )
    return Components(answer, fmt, trial, cost, correct, score, precision, coverage, avoided, excess)
