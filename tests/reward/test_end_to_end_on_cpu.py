"""Rows from the data adapters run through the real ToolMasterAgentLoop (scripted LLM, real schema/bfcl
environments) inside verl's AgentLoopWorker, which scores every finished trajectory through our manager in a
RewardLoopWorker: the `tool_extra_fields` path main_ppo uses for rule rewards. Checks that the loop's record
and our reader agree, end to end."""

from __future__ import annotations

import asyncio
import os
from types import SimpleNamespace

import numpy as np
import pytest

from verl_toolmaster.data import rl_row
from verl_toolmaster.protocol import system_prompt, turn_text

EOS = "<|im_end|>"


def T(phase, body, calls=()):
    return turn_text(phase, body, list(calls)) + EOS


class ScriptedServer:
    """LLM stand-in: a trajectory's script is picked by the task query found in its first prompt."""

    def __init__(self, tokenizer, scripts: dict[str, list[str]]):
        self.tokenizer, self.scripts, self.state = tokenizer, scripts, {}

    async def generate(self, request_id, *, prompt_ids, sampling_params, **kw):
        from verl_toolmaster.compat import TokenOutput

        if request_id not in self.state:
            text = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
            self.state[request_id] = [next(k for k in self.scripts if k in text), 0]
        key, i = self.state[request_id]
        self.state[request_id][1] += 1
        script = self.scripts[key]
        ids = self.tokenizer.encode(script[i] if i < len(script) else T("answer", "out of script"), add_special_tokens=False)
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), extra_fields={"min_global_steps": 1, "max_global_steps": 1})


class Proxy:
    target = None

    async def generate(self, *a, **kw):
        return await self.target.generate(*a, **kw)


def compose(model_dir):
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None):
        cfg = hydra_compose(
            "ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={model_dir}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.prompt_length=16384",
                "actor_rollout_ref.rollout.response_length=1536",
                "data.max_prompt_length=16384",
                "data.max_response_length=1536",
                "actor_rollout_ref.rollout.multi_turn.enable=true",
                "actor_rollout_ref.rollout.multi_turn.max_tool_response_length=512",
                "reward.num_workers=1",
                "reward.reward_manager.source=register",
                "reward.reward_manager.name=toolmaster",
            ],
        )
    GlobalHydra.instance().clear()
    return cfg


def test_agent_loop_records_score_through_the_reward_loop(tasks, tiny_model_dir):
    from verl import DataProto

    from verl_toolmaster import compat
    from verl_toolmaster.registration import register_agent_loop
    from verl_toolmaster.reward import register_with_verl

    register_agent_loop()
    register_with_verl()
    api = next(t for t in tasks("apibank") if len(t.ground_truth["calls"][0]["arguments"]) >= 2)
    multi = next(t for t in tasks("bfcl") if t.source == "bfcl_multi" and all(t.gold))
    gold = api.ground_truth["calls"][0]
    extra = {**gold["arguments"], "priority": "high"}  # the schema env rejects an unexpected parameter
    scripts = {
        api.query: [T("trial", "what does it need", [{"name": gold["name"], "arguments": extra}]), T("execute", "all arguments", [gold]), T("answer", "done")],
        multi.query: [t for steps in multi.gold for t in (T("execute", "do it", [c for step in steps for c in step]), T("answer", "done"))],
    }
    wrong_api = [T("execute", "guess", [{"name": gold["name"], "arguments": {**gold["arguments"], next(iter(gold["arguments"])): "__wrong__"}}]), T("answer", "done")]
    rows = [rl_row(api, 0, system_prompt("on")), rl_row(multi, 1, system_prompt("on"))]
    cols = {}
    for key in ("data_source", "agent_name", "reward_model", "extra_info"):
        cols[key] = [r[key] for r in rows]
    cols["raw_prompt"] = [r["prompt"] for r in rows]
    cols["index"] = [0, 1]
    non_tensors = {}
    for k, v in cols.items():
        arr = np.empty(len(v), dtype=object)
        arr[:] = v
        non_tensors[k] = arr
    cfg = compose(tiny_model_dir)

    async def run(script_overrides):
        reward_worker = compat.RewardLoopWorker(compat.migrate_legacy_reward_impl(compose(tiny_model_dir)))
        handle = SimpleNamespace(compute_score=SimpleNamespace(remote=reward_worker.compute_score))  # Ray handle stand-in
        proxy = Proxy()
        worker = compat.AgentLoopWorker(cfg, llm_client=proxy, reward_loop_worker_handles=[handle])
        proxy.target = ScriptedServer(worker.tokenizer, {**scripts, **script_overrides})
        batch = DataProto.from_dict(tensors={"dummy": __import__("torch").zeros(len(rows), 1)}, non_tensors=dict(non_tensors), meta_info={"global_steps": 1, "validate": False})
        return await worker.generate_sequences(batch)

    out = asyncio.run(run({}))
    nt = out.non_tensor_batch
    info = [nt["toolmaster"][i] for i in range(2)]
    assert [c["ok"] for c in info[0]["calls"]] == [False, True] and info[0]["answers"] == ["done"]
    reasons = list(nt["reason"])
    assert reasons == ["correct", "correct"], reasons
    assert list(nt["has_record"]) == [1.0, 1.0] and list(nt["spans_mismatch"]) == [0.0, 0.0]
    # API-Bank: the failed trial exposed the schema error, execution avoided it -> useful trial, full bonus
    assert nt["trial"][0] == 1.0 and nt["trial_errors_avoided"][0] == 1.0
    scores = out.batch["rm_scores"].sum(-1).tolist()
    assert scores[0] == pytest.approx(1.2) and scores[1] == pytest.approx(1.0)
    assert scores == pytest.approx(list(nt["score"]))

    wrong = asyncio.run(run({api.query: wrong_api}))
    assert wrong.non_tensor_batch["reason"][0] == "partial_match"
    assert wrong.batch["rm_scores"].sum(-1)[0].item() < scores[0]
