"""Scoring is bounded: a trajectory whose scoring would hang gets a score with reason "timeout" within the limit."""

from __future__ import annotations

import asyncio
import time

import pytest
from omegaconf import OmegaConf
from reward_helpers import Step, build_trajectory, make_batch

from verl_toolmaster.reward.config import RewardConfigError, ToolMasterRewardConfig
from verl_toolmaster.reward.manager import ToolMasterRewardManager

LIMIT_S = 3.0


def _score_all(tokenizer, samples, patch=None, warm_up=(), **kwargs):
    """Score ``samples`` concurrently (after scoring ``warm_up``, untimed); returns the results and the wall time."""
    async def go():
        manager = ToolMasterRewardManager(OmegaConf.create({"reward": {"reward_kwargs": kwargs}}), tokenizer, None)
        if patch:
            patch(manager)
        if warm_up:
            warm = make_batch(tokenizer, list(warm_up))
            await asyncio.gather(*(manager.run_single(warm[i : i + 1]) for i in range(len(warm))))
        batch = make_batch(tokenizer, samples)
        started = time.perf_counter()
        out = await asyncio.gather(*(manager.run_single(batch[i : i + 1]) for i in range(len(batch))))
        return out, time.perf_counter() - started

    return asyncio.run(go())


@pytest.mark.bfcl
def test_bfcl_reward_timeout_on_a_huge_power_reexecution(tiny_tokenizer):
    """bfcl-eval's checker re-executes the model's calls; power(7, 10**7) holds the GIL for ~10 s."""
    pytest.importorskip("bfcl_eval")
    gt = {"ground_truth": [[]], "id": "multi_turn_base_9999", "initial_config": {}, "involved_classes": ["MathAPI"], "long_context": False}
    hang = build_trajectory(tiny_tokenizer, [Step("execute", "go", [{"name": "power", "arguments": {"base": 7, "exponent": 10**7}}]), Step("answer", "done")])
    quick = build_trajectory(tiny_tokenizer, [Step("execute", "go", [{"name": "add", "arguments": {"a": 1, "b": 2}}]), Step("answer", "done")])
    samples = [{"traj": hang, "source": "bfcl_multi", "gt": gt}, {"traj": quick, "source": "bfcl_multi", "gt": gt}]
    warm = [{"traj": quick, "source": "bfcl_multi", "gt": gt}] * 2  # starts both children (bfcl-eval imports) untimed
    out, elapsed = _score_all(tiny_tokenizer, samples, warm_up=warm, scoring_timeout_s=LIMIT_S)
    slow, fine = out[0]["reward_extra_info"], out[1]["reward_extra_info"]
    assert (slow["reason"], slow["scoring_timeout"], slow["answer"]) == ("timeout", 1.0, 0.0)
    assert isinstance(out[0]["reward_score"], float)
    assert fine["scoring_timeout"] == 0.0 and fine["reason"] != "timeout"  # scored by the other child meanwhile
    assert elapsed < LIMIT_S + 1.0, elapsed


def test_reward_timeout_of_an_async_scorer_that_never_answers(tiny_tokenizer, tasks):
    hop = tasks("toolhop")[0]

    def never(manager):
        async def forever(*_):
            await asyncio.sleep(3600)

        manager.scorers["toolhop"].ascore = forever

    traj = build_trajectory(tiny_tokenizer, [Step("answer", hop.ground_truth["answer"])])
    out, elapsed = _score_all(tiny_tokenizer, [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth}] * 3, patch=never, scoring_timeout_s=1.0)
    assert elapsed < 1.0 + 1.0, elapsed
    for r in out:
        info = r["reward_extra_info"]
        assert (info["reason"], info["scoring_timeout"], info["answer"], info["scorer_error"]) == ("timeout", 1.0, 0.0, 0.0)
        assert r["reward_score"] == pytest.approx(0.0)


@pytest.mark.parametrize("kwargs, message", [
    ({"scoring_timeout_s": 0}, "scoring_timeout_s must be > 0"),
    ({"scoring_workers": 0}, "scoring_workers must be an integer >= 1"),
])
def test_reward_timeout_settings_are_validated(kwargs, message):
    with pytest.raises(RewardConfigError, match=message):
        ToolMasterRewardConfig.from_kwargs(kwargs)
