"""ToolMasterRewardManager: the trial-aware reward for verl 0.9.1's reward loop.

Selectable as ``reward.reward_manager.name=toolmaster`` once :func:`verl_toolmaster.reward.register_with_verl`
has run, or without registration via ``reward.reward_manager.source=importlib
reward.reward_manager.module.path=pkg://verl_toolmaster.reward.manager
reward.reward_manager.name=ToolMasterRewardManager``. Formula, components and defaults: docs/reward.md.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import logging
import time
from typing import Any, Callable

from verl import DataProto

from verl_toolmaster.compat import RewardManagerBase
from verl_toolmaster.envs.trusted_pool import CallTimeout, TrustedPoolConfig, shared_pool
from verl_toolmaster.protocol.tags import SPAN_LABELS

from . import registered_when_defined
from .components import combine, untagged_fraction
from .config import ToolMasterRewardConfig
from .record import RecordError, check_record, episode_from_record, find_record, record_from_text
from .scorers import Episode, Scorer, ScoreResult, load_builtin_scorers

logger = logging.getLogger(__name__)


@functools.lru_cache(maxsize=512)
def _parse_env_spec(spec: str) -> dict[str, Any]:
    """Env specs repeat across a GRPO group (one task, n rollouts); scorers only read them."""
    return json.loads(spec)


# reward_extra_info keys reported for every sample (plus every scorer's detail keys), in this order.
# verl builds one column per key from the first sample's keys, so the set must not vary between samples.
BASE_KEYS = (
    "score",  # the reward
    "answer",  # task success from the data source's scorer, [0, 1]
    "format",  # protocol compliance, [0, 1]
    "trial",  # trial usefulness, [0, 1]
    "cost",  # over-budget cost, [0, 1]
    "acc",  # 1.0 when answer >= correct_threshold (verl's validation uses `acc` as its core metric)
    "trial_calls",  # counts from the record
    "execute_calls",
    "self_corrections",
    "violations",  # total protocol violations
    "scoring_seconds",  # wall time of scoring this sample (the reward's share of a step; bench/pipeline.py)
    "tool_errors",
    "trial_precision",  # trial calls whose tool was later executed successfully
    "trial_coverage",  # executed tools that were trialled first
    "trial_errors_avoided",
    "excess",  # calls + turns beyond the soft budgets
    "untagged_frac",  # sampled tokens outside any valid phase (from phase_spans)
    "has_record",  # 1.0 when the agent loop's "toolmaster" record was used
    "from_text",  # 1.0 when the record was rebuilt from the decoded text
    "spans_mismatch",  # 1.0 when the record's phase_spans do not describe the response tokens (a loop bug)
    "scorer_error",  # 1.0 when the scorer raised (reason "scorer_error")
    "scoring_timeout",  # 1.0 when scoring outlived reward_kwargs.scoring_timeout_s (reason "timeout", score of answer 0)
    "reason",  # str: why the answer scored what it did; verl's metric aggregation skips str columns
)


@registered_when_defined
class ToolMasterRewardManager(RewardManagerBase):
    """Scores one trajectory per :meth:`run_single` call from token ids, phase spans and the call log."""

    def __init__(
        self,
        config: Any,
        tokenizer: Any,
        compute_score: Callable[..., Any] | None = None,
        reward_router_address: str | None = None,
        reward_model_tokenizer: Any = None,
        **kwargs: Any,
    ):
        super().__init__(config, tokenizer, compute_score)
        reward_cfg = config.get("reward", {}) if hasattr(config, "get") else {}
        self.cfg = ToolMasterRewardConfig.from_kwargs(reward_cfg.get("reward_kwargs") if reward_cfg else None)
        self.delegate = compute_score  # verl's custom_reward_function or default_compute_score
        self.delegate_is_async = inspect.iscoroutinefunction(compute_score)
        self.scorers: dict[str, Scorer] = {}
        for source, cls in load_builtin_scorers().items():
            self.scorers[source] = cls(judge=self.cfg.judge) if source == "stabletoolbench" else cls()
        detail_keys: list[str] = []
        for scorer in self.scorers.values():
            detail_keys += [k for k in type(scorer).detail_keys if k not in detail_keys]
        self.detail_keys = tuple(detail_keys)
        self._declared = frozenset(detail_keys)
        self._warned: set[str] = set()
        if self.cfg.judge.mode == "auto" and not self.cfg.judge.active:
            logger.warning("reward_kwargs.judge.mode=auto without base_url/model: StableToolBench rows use the offline proxy")

    # ---------------------------------------------------------------- per sample

    async def run_single(self, data: DataProto) -> dict:
        started = time.perf_counter()
        item = data[len(data) - 1]  # multi-output trajectories are scored on their last output, as verl's managers do
        nt = item.non_tensor_batch
        index = self._index(nt)
        response_ids = item.batch["responses"]
        valid = int(item.batch["attention_mask"][-response_ids.shape[-1] :].sum())
        ids = response_ids[:valid]  # a tensor: tokenizers convert it in one call, a list element by element
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        source = str(nt["data_source"])

        record, record_note, from_text = self._record(nt, text, index)
        mismatch = record is not None and not from_text and self._spans_mismatch(record, item, valid, index)
        scorer = self.scorers.get(source)
        failed = timed_out = False
        if scorer is None:
            result = await self._delegated(source, ids, nt, index)
        else:
            try:
                ground_truth = self._ground_truth(nt)
                env_spec = self._env_spec(nt) if scorer.needs_env_spec else None
                episode = episode_from_record(record, text, env_spec) if record else Episode(answers=[], response_text=text)
                result = await self._bounded_score(scorer, ground_truth, episode)
            except (asyncio.TimeoutError, CallTimeout):
                self._log_once(f"timeout:{source}", "scoring sample index=%s (%s) took longer than scoring_timeout_s=%g s", index, source, self.cfg.scoring_timeout_s)
                result, timed_out = ScoreResult(0.0, "timeout"), True
            except Exception as exc:  # a failing scorer must not kill the training step
                first = f"scorer:{source}:{type(exc).__name__}" not in self._warned
                self._warned.add(f"scorer:{source}:{type(exc).__name__}")
                logger.error("scorer for %r failed on sample index=%s: %r", source, index, exc, exc_info=first)
                result, failed = ScoreResult(0.0, "scorer_error"), True

        comps = combine(result.answer, record, self.cfg)
        counts = record["counts"] if record else {}
        info: dict[str, Any] = {
            "score": comps.score,
            "answer": comps.answer,
            "format": comps.format,
            "trial": comps.trial,
            "cost": comps.cost,
            "acc": float(comps.correct),
            "trial_calls": float(counts.get("trial_calls", 0)),
            "execute_calls": float(counts.get("execute_calls", 0)),
            "self_corrections": float(counts.get("self_corrections", 0)),
            "violations": float(sum(counts.get("violations", {}).values())),
            "tool_errors": float(counts.get("tool_errors", 0)),
            "trial_precision": comps.trial_precision,
            "trial_coverage": comps.trial_coverage,
            "trial_errors_avoided": float(comps.trial_errors_avoided),
            "excess": float(comps.excess),
            "untagged_frac": untagged_fraction(record) if record else 0.0,
            "has_record": float(record is not None and not from_text),
            "from_text": float(from_text),
            "spans_mismatch": float(mismatch),
            "scorer_error": float(failed),
            "scoring_timeout": float(timed_out),
            "reason": result.reason if record is not None or failed or timed_out or scorer is None else record_note,
        }
        details = result.details
        for key in self.detail_keys:
            value = details.get(key)
            info[key] = None if value is None else float(value)
        if not self._declared.issuperset(details):
            undeclared = sorted(set(details) - self._declared)
            self._log_once(f"undeclared:{source}", "scorer for %r returned undeclared detail keys %s (dropped)", source, undeclared)
        info["scoring_seconds"] = time.perf_counter() - started
        return {"reward_score": float(comps.score), "reward_extra_info": info}

    # ---------------------------------------------------------------- helpers

    async def _bounded_score(self, scorer: Scorer, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        """Score within ``scoring_timeout_s``: cpu_heavy scorers in a killable child process (a thread could not be
        stopped and would hold the GIL), the others under an asyncio timeout (they wait on the network or are quick)."""
        limit = self.cfg.scoring_timeout_s
        if scorer.cpu_heavy:
            cls = type(scorer)
            pool = shared_pool(TrustedPoolConfig(workers=self.cfg.scoring_workers))
            return await pool.call("verl_toolmaster.reward.scorers.base:score_in_child", f"{cls.__module__}:{cls.__qualname__}", ground_truth, episode, timeout_s=limit)
        return await asyncio.wait_for(scorer.ascore(ground_truth, episode), timeout=limit)

    @property
    def extra_keys(self) -> tuple[str, ...]:
        """Every reward_extra_info key, the same for every sample."""
        return BASE_KEYS + self.detail_keys

    def _record(self, nt: dict[str, Any], text: str, index: Any) -> tuple[dict[str, Any] | None, str, bool]:
        """(record, reason when there is none, rebuilt-from-text flag)."""
        raw = find_record(nt)
        if raw is not None:
            try:
                return check_record(raw), "", False
            except RecordError as exc:
                self._log_once("bad_record", "sample index=%s: %s", index, exc)
                return None, "bad_protocol_record", False
        if not self.cfg.text_fallback:
            return None, "no_protocol_record", False
        try:
            record, why = record_from_text(text)
        except Exception as exc:  # the parser must not take the step down either
            self._log_once(f"text_parse:{type(exc).__name__}", "sample index=%s: protocol parse of the text failed: %r", index, exc)
            return None, "no_protocol_record", False
        if record is None:
            self._log_once("no_parser", "sample index=%s has no 'toolmaster' record and %s", index, why)
            return None, "no_protocol_record", False
        return record, "", True

    def _spans_mismatch(self, record: dict[str, Any], item: Any, valid: int, index: Any) -> bool:
        """Check the record's phase_spans against the response: contiguous, known labels, covering its ``valid``
        tokens; when the batch carries ``response_mask`` (batch scoring), observation spans must be exactly its 0s."""
        spans = record["phase_spans"]
        if "response_mask" in item.batch.keys():
            from verl_toolmaster.protocol import span_problems

            problems = span_problems(spans, item.batch["response_mask"][:valid].tolist())
        else:  # per-trajectory scoring gets no mask: check the spans' own shape and coverage
            problems, pos = [], 0
            for label, start, end in spans:
                if label not in SPAN_LABELS or start != pos or end <= start:
                    problems.append(f"bad span [{label!r}, {start}, {end}) after position {pos}")
                    break
                pos = end
            if not problems and pos != valid:
                problems.append(f"spans end at {pos}, the response has {valid} tokens")
        if problems:
            self._log_once("spans", "sample index=%s: phase_spans disagree with the response: %s", index, "; ".join(problems[:3]))
        return bool(problems)

    @staticmethod
    def _index(nt: dict[str, Any]) -> Any:
        if "index" in nt:
            return nt["index"]
        extra = nt.get("extra_info")
        return extra.get("index") if isinstance(extra, dict) else None

    @staticmethod
    def _ground_truth(nt: dict[str, Any]) -> dict[str, Any]:
        gt = nt["reward_model"]["ground_truth"]
        if isinstance(gt, (str, bytes)):
            gt = json.loads(gt)
        if not isinstance(gt, dict):
            raise ValueError(f"reward_model.ground_truth must be a JSON object, got {type(gt).__name__}")
        return gt

    @staticmethod
    def _env_spec(nt: dict[str, Any]) -> dict[str, Any] | None:
        extra = nt.get("extra_info")
        spec = extra.get("env") if isinstance(extra, dict) else None
        return _parse_env_spec(spec) if isinstance(spec, str) else spec

    async def _delegated(self, source: str, ids: Any, nt: dict[str, Any], index: Any) -> ScoreResult:
        """A data source without a ToolMaster scorer: verl's compute_score, on text with special tokens stripped."""
        if not self.cfg.delegate_unknown_sources or self.delegate is None:
            self._log_once(f"unknown:{source}", "no scorer for data_source=%r (sample index=%s)", source, index)
            return ScoreResult(0.0, "unknown_source")
        extra = nt.get("extra_info")
        kwargs = {
            "data_source": source,
            "solution_str": self.tokenizer.decode(ids, skip_special_tokens=True),
            "ground_truth": nt["reward_model"]["ground_truth"],
            "extra_info": dict(extra) if isinstance(extra, dict) else {},
        }
        try:
            out = await self.delegate(**kwargs) if self.delegate_is_async else self.delegate(**kwargs)
        except NotImplementedError:
            self._log_once(f"unknown:{source}", "no scorer for data_source=%r, verl's compute_score has none either (sample index=%s)", source, index)
            return ScoreResult(0.0, "unknown_source")
        value = out["score"] if isinstance(out, dict) else out
        return ScoreResult(float(value), "verl_compute_score")

    def _log_once(self, key: str, msg: str, *args: Any) -> None:
        """Log every occurrence at debug level and the first of each kind as an error, with the sample index."""
        if key in self._warned:
            logger.debug(msg, *args)
        else:
            self._warned.add(key)
            logger.error(msg + " (further occurrences of this kind are logged at debug level)", *args)
