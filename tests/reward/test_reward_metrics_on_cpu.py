"""reward_extra_info through verl's own aggregation (validation metrics, batch columns) and our step metrics."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from omegaconf import OmegaConf
from reward_helpers import Step, build_trajectory, make_batch

from verl_toolmaster.reward.manager import ToolMasterRewardManager
from verl_toolmaster.reward.metrics import reward_step_metrics


@pytest.fixture(scope="module")
def infos(tasks, tiny_tokenizer):
    hop, api = tasks("toolhop")[0], next(t for t in tasks("apibank") if t.ground_truth["calls"])
    samples = [
        {"traj": build_trajectory(tiny_tokenizer, [Step("answer", hop.ground_truth["answer"])]), "source": "toolhop", "gt": hop.ground_truth},
        {"traj": build_trajectory(tiny_tokenizer, [Step("answer", "nope")]), "source": "toolhop", "gt": hop.ground_truth},
        {"traj": build_trajectory(tiny_tokenizer, [Step("execute", "go", api.ground_truth["calls"]), Step("answer", "ok")]), "source": "apibank", "gt": api.ground_truth},
    ]

    async def go():
        manager = ToolMasterRewardManager(OmegaConf.create({"reward": {}}), tiny_tokenizer, None)
        batch = make_batch(tiny_tokenizer, samples)
        return [(await manager.run_single(batch[i : i + 1]))["reward_extra_info"] for i in range(len(batch))]

    return [s["source"] for s in samples], asyncio.run(go())


def test_verl_validation_metrics_take_numbers_and_skip_reason_and_none(infos):
    from verl.trainer.ppo.metric_utils import process_validation_metrics

    sources, rows = infos
    keys = list(rows[0])
    columns = {k: [r[k] for r in rows] for k in keys}
    # the same column building verl's agent-loop _postprocess / RewardLoopManager.compute_rm_score do
    arrays = {k: np.array(v) for k, v in columns.items()}
    assert arrays["reason"].dtype.kind == "U" and arrays["answer"].dtype == np.float64
    out = process_validation_metrics(sources, ["u0", "u0", "u1"], columns)
    assert out["toolhop"]["answer"]["mean@2"] == 0.5 and out["toolhop"]["acc"]["mean@2"] == 0.5
    assert out["apibank"]["calls/exact"]["mean@1"] == 1.0
    assert "reason" not in out["toolhop"] and "calls/exact" not in out["toolhop"]  # str and all-None columns skipped
    assert out["toolhop"]["toolhop/sub_answer_hits"]["mean@2"] >= 0.0


def test_reward_step_metrics(infos):
    _, rows = infos
    m = reward_step_metrics(rows + [None])
    assert m["reward/answer/mean"] == pytest.approx(2 / 3)
    assert m["reward/calls/exact/mean"] == 1.0  # over the one trajectory that has it
    assert m["reward/reason/correct"] == pytest.approx(2 / 3) and m["reward/reason/wrong_answer"] == pytest.approx(1 / 3)
    assert all(isinstance(v, float) for v in m.values())
    assert reward_step_metrics([None, None]) == {}
