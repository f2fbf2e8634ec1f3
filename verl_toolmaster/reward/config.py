"""Configuration of the ToolMaster reward: weights, soft budgets, judge. Read from ``reward.reward_kwargs``.

The paper does not publish its reward weights; the defaults below are this project's documented choice
(rationale in docs/reward.md). Every field can be set on the command line, e.g.
``+reward.reward_kwargs.w_trial=0.3 +reward.reward_kwargs.judge.mode=judge``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from .scorers.stabletoolbench import JudgeConfig


class RewardConfigError(ValueError):
    """``reward.reward_kwargs`` holds an unknown key or an out-of-range value."""


@dataclass
class ToolMasterRewardConfig:
    """``score = w_answer*answer + w_format*(format-1) + w_trial*trial*answer*[answer>=correct_threshold] - w_cost*cost``."""

    w_answer: float = 1.0  # weight of task success (answer in [0, 1]); it dominates every other term
    w_format: float = 0.5  # weight of the protocol penalty (format - 1) in [-1, 0]; a correct answer outside the protocol keeps 1 - w_format
    w_trial: float = 0.2  # weight of the trial-usefulness bonus (trial in [0, 1]); paid only with a correct answer
    w_cost: float = 0.3  # weight of the over-budget cost (cost in [0, 1])
    correct_threshold: float = 1.0  # answer >= this is "correct": gates the trial bonus and is reported as `acc`
    violation_penalty: float = 0.25  # format = max(0, 1 - violation_penalty * #violations): 4 violations -> format 0
    trial_call_budget: int = 4  # trial calls per user turn that cost nothing
    execute_call_budget: int = 8  # execute calls per user turn that cost nothing
    turn_budget: int = 12  # assistant turns per user turn that cost nothing
    cost_per_excess: float = 0.1  # cost per call or turn beyond its budget; cost = min(1, cost_per_excess * excess)
    text_fallback: bool = True  # without a "toolmaster" record, rebuild one from the decoded text with the protocol parser
    delegate_unknown_sources: bool = True  # data sources without a scorer go to verl's compute_score (custom or default)
    judge: JudgeConfig = field(default_factory=JudgeConfig)  # StableToolBench: LLM judge or offline proxy
    scoring_timeout_s: float = 60.0  # wall-clock limit of scoring one trajectory; past it the score is 0 with reason "timeout"
    scoring_workers: int = 2  # child processes per reward worker for cpu_heavy scorers (BFCL multi-turn re-execution)

    def __post_init__(self) -> None:
        for name in ("w_answer", "w_format", "w_trial", "w_cost", "violation_penalty", "cost_per_excess"):
            if getattr(self, name) < 0:
                raise RewardConfigError(f"reward_kwargs.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("trial_call_budget", "execute_call_budget", "turn_budget"):
            if getattr(self, name) < 0:
                raise RewardConfigError(f"reward_kwargs.{name} must be >= 0, got {getattr(self, name)}")
        if not (isinstance(self.scoring_timeout_s, (int, float)) and self.scoring_timeout_s > 0):
            raise RewardConfigError(f"reward_kwargs.scoring_timeout_s must be > 0, got {self.scoring_timeout_s!r}")
        if not isinstance(self.scoring_workers, int) or self.scoring_workers < 1:
            raise RewardConfigError(f"reward_kwargs.scoring_workers must be an integer >= 1, got {self.scoring_workers!r}")
        if not 0 < self.correct_threshold <= 1:
            raise RewardConfigError(f"reward_kwargs.correct_threshold must be in (0, 1], got {self.correct_threshold}")

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None) -> "ToolMasterRewardConfig":
        """Build from ``reward.reward_kwargs`` (a dict or DictConfig); unknown keys are an error naming the key.

        Keys of other reward managers that verl itself puts there (DAPO's ``overlong_buffer_cfg``,
        ``max_resp_len``) are ignored.
        """
        raw = _plain(kwargs) or {}
        if not isinstance(raw, dict):
            raise RewardConfigError(f"reward.reward_kwargs must be a mapping, got {type(raw).__name__}")
        raw = {k: v for k, v in raw.items() if k not in _FOREIGN_KEYS}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise RewardConfigError(f"unknown reward.reward_kwargs key(s) {unknown}; known: {sorted(known)}")
        judge_raw = raw.pop("judge", None) or {}
        if not isinstance(judge_raw, dict):
            raise RewardConfigError("reward_kwargs.judge must be a mapping")
        judge_known = {f.name for f in dataclasses.fields(JudgeConfig)}
        bad = sorted(set(judge_raw) - judge_known)
        if bad:
            raise RewardConfigError(f"unknown reward.reward_kwargs.judge key(s) {bad}; known: {sorted(judge_known)}")
        try:
            return cls(**raw, judge=JudgeConfig(**judge_raw))
        except TypeError as exc:
            raise RewardConfigError(f"bad reward.reward_kwargs: {exc}") from exc


_FOREIGN_KEYS = frozenset({"overlong_buffer_cfg", "max_resp_len"})


def _plain(obj: Any) -> Any:
    """DictConfig -> dict (resolving interpolations); plain objects unchanged."""
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        return obj
    if isinstance(obj, DictConfig):
        return OmegaConf.to_container(obj, resolve=True)
    return obj
