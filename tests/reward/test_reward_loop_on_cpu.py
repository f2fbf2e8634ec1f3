"""The manager inside verl's RewardLoopWorker, with the real composed ppo_trainer config (verl-0.9.1.md §9):
selected by registry name and by importlib; compute_score_batch on a DataProto built like the agent-loop
worker's, mixing sources, record-less and malformed samples."""

from __future__ import annotations

import asyncio
import os

import pytest
from reward_helpers import Step, build_trajectory, make_batch


def compose(model_dir, overrides):
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    config_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=config_dir, version_base=None):
        cfg = hydra_compose(
            "ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={model_dir}",
                "actor_rollout_ref.rollout.name=vllm",
                "reward.num_workers=1",
                "+reward.reward_kwargs.w_trial=0.25",
                *overrides,
            ],
        )
    GlobalHydra.instance().clear()
    return cfg


SELECTIONS = {
    "register": ["reward.reward_manager.source=register", "reward.reward_manager.name=toolmaster"],
    "importlib": [
        "reward.reward_manager.source=importlib",
        "reward.reward_manager.name=ToolMasterRewardManager",
        "reward.reward_manager.module.path=pkg://verl_toolmaster.reward.manager",
    ],
}


@pytest.fixture(scope="module")
def samples(tasks, tiny_tokenizer):
    tok = tiny_tokenizer
    hop = tasks("toolhop")[0]
    api = next(t for t in tasks("apibank") if len(t.ground_truth["calls"][0]["arguments"]) >= 2)
    multi = next(t for t in tasks("bfcl") if t.source == "bfcl_multi" and len(t.gold) == len(t.ground_truth["ground_truth"]))
    gold_calls = api.ground_truth["calls"]
    partial = [dict(gold_calls[0], arguments={**gold_calls[0]["arguments"], next(iter(gold_calls[0]["arguments"])): "__wrong__"})]
    # BFCL multi-turn: all turns' gold calls as execute calls of their user turn
    multi_traj = build_trajectory(tok, [Step("execute", "go", [c for step in multi.gold[0] for c in step]), Step("answer", "done")])
    rec = multi_traj.record
    rec["calls"] = [
        {"phase": "execute", "turn": u, "name": c["name"], "arguments": c["arguments"], "ok": True, "error_kind": None, "text": "", "latency_s": 0.0}
        for u, steps in enumerate(multi.gold) for step in steps for c in step
    ]
    rec["answers"] = ["done"] * len(multi.gold)
    return [
        {"traj": build_trajectory(tok, [Step("trial", "probe", [{"name": "f", "arguments": {}}]), Step("execute", "go", [{"name": "f", "arguments": {"x": 1}}]), Step("answer", hop.ground_truth["answer"])]), "source": "toolhop", "gt": hop.ground_truth},
        {"traj": build_trajectory(tok, [Step("execute", "go", partial), Step("answer", "done")]), "source": "apibank", "gt": api.ground_truth},
        {"traj": multi_traj, "source": "bfcl_multi", "gt": multi.ground_truth},
        {"text": "garbage without protocol", "source": "toolhop", "gt": hop.ground_truth, "record": "absent"},
    ]


@pytest.mark.parametrize("selection", sorted(SELECTIONS))
def test_reward_loop_worker_scores_with_the_toolmaster_manager(selection, tiny_model_dir, tiny_tokenizer, samples):
    from verl_toolmaster import compat
    from verl_toolmaster.reward import register_with_verl
    from verl_toolmaster.reward.manager import ToolMasterRewardManager

    register_with_verl()  # what the plugin's post-import hook does in every process
    cfg = compat.migrate_legacy_reward_impl(compose(tiny_model_dir, SELECTIONS[selection]))
    batch = make_batch(tiny_tokenizer, samples)

    async def score():
        worker = compat.RewardLoopWorker(cfg)  # constructed inside the running loop (event-loop capture)
        assert isinstance(worker.reward_manager, ToolMasterRewardManager)
        assert worker.reward_manager.cfg.w_trial == 0.25  # reward.reward_kwargs reached the manager
        return await worker.compute_score_batch(batch)

    out = asyncio.run(score())
    assert len(out) == len(samples)
    keys = [tuple(r["reward_extra_info"]) for r in out]
    assert len(set(keys)) == 1, "verl needs one reward_extra_info key set for the whole batch"
    info = [r["reward_extra_info"] for r in out]
    # toolhop: correct, useful trial -> 1 + 0.25
    assert out[0]["reward_score"] == pytest.approx(1.25) and info[0]["reason"] == "correct"
    # apibank: one wrong value out of n arguments
    n = len(samples[1]["gt"]["calls"][0]["arguments"])
    assert info[1]["answer"] == pytest.approx((2 + (n - 1) / n) / 3) and info[1]["reason"] == "partial_match"
    # bfcl multi-turn through bfcl-eval's checker (run off the event loop)
    assert (info[2]["answer"], info[2]["reason"]) == (1.0, "correct")
    # no record: rebuilt from the text, which has no protocol at all
    assert info[3]["from_text"] == 1.0 and info[3]["answer"] == 0.0 and out[3]["reward_score"] < 0
    for r in out:
        assert r["reward_score"] == r["reward_extra_info"]["score"]
