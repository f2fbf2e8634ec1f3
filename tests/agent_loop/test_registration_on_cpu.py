"""How verl finds the loop (plugin hook, YAML entry) and how its counts reach the trainer's step metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from loop_harness import T, make_config, row, run_rows
from omegaconf import open_dict

import verl_toolmaster
from verl_toolmaster.registration import AGENT_LOOP_ENTRY, _v1_step_metrics, _wrap_v0, _wrap_v1, install_step_metrics, register_agent_loop
from verl_toolmaster.rollout_metrics import step_metrics

YAML = Path(verl_toolmaster.__file__).parent / "configs" / "agent_loops.yaml"


def test_registered_after_import_verl_in_a_fresh_process():
    """The checked outcome: ``import verl`` (entry-point plugin) + verl's agent-loop module -> our entry."""
    code = (
        "import verl\n"
        "import verl.experimental.agent_loop.agent_loop as m\n"
        "import verl.trainer.ppo.v1.trainer_base as t\n"
        "print('metrics hook', getattr(t.PPOTrainer._compute_metrics, '_toolmaster', False))\n"
        "print(m._agent_loop_registry.get('toolmaster_agent'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("VERL_USE_EXTERNAL_PLUGINS", "VERL_PLATFORM")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1] == str(AGENT_LOOP_ENTRY), out.stdout[-2000:]
    assert "metrics hook True" in lines, out.stdout[-2000:]


def test_register_agent_loop_into_a_given_registry():
    reg: dict = {}
    register_agent_loop(reg)
    assert reg == {"toolmaster_agent": {"_target_": "verl_toolmaster.agent_loop.ToolMasterAgentLoop"}}


def test_yaml_entry_route(base_config):
    """agent.agent_loop_config_path -> verl loads the entry; its `toolmaster:` keys configure the loop."""
    from omegaconf import OmegaConf

    entries = OmegaConf.load(YAML)
    assert [e.name for e in entries] == ["toolmaster_agent"] and entries[0]._target_ == AGENT_LOOP_ENTRY["_target_"]
    cfg = make_config(base_config)
    with open_dict(cfg):
        cfg.actor_rollout_ref.rollout.agent.agent_loop_config_path = str(YAML)
    run = run_rows(cfg, [row("y", {"kind": "tm_test_counter"})], {"y": [T("trial", "x", ("get", {})), T("answer", "0")]})
    assert run.info()["termination"] == "answered" and run.info()["counts"]["trial_calls"] == 1


def _info(trial_calls, execute_calls, termination="answered", violations=None):
    counts = {"trial_turns": 1, "execute_turns": 1, "answer_turns": 1, "trial_calls": trial_calls, "execute_calls": execute_calls,
              "tool_errors": 0, "self_corrections": 0, "truncated_outputs": 0, "assistant_turns": 3, "violations": violations or {}}
    return {"counts": counts, "termination": termination}


def test_step_metrics_aggregation():
    m = step_metrics([_info(2, 1), _info(0, 3, "turn_budget", {"no_tag": 2}), None])
    assert m["toolmaster/trajectories"] == 2
    assert m["toolmaster/trial_calls/mean"] == 1.0 and m["toolmaster/trial_calls/max"] == 2.0
    assert m["toolmaster/execute_calls/mean"] == 2.0
    assert m["toolmaster/violations/no_tag/mean"] == 1.0 and m["toolmaster/violations/total/mean"] == 1.0
    assert m["toolmaster/termination/answered"] == 0.5 and m["toolmaster/termination/turn_budget"] == 0.5
    assert m["toolmaster/termination/max_violations"] == 0.0
    assert step_metrics([None, {"other": 1}]) == {}


def test_v1_hook_reads_extra_fields_from_transfer_queue():
    extra = [{"toolmaster": _info(3, 1), "reward_extra_info": {"score": 1.0, "reason": "correct"}},
             {"toolmaster": _info(1, 1), "reward_extra_info": {"score": 0.0, "reason": "wrong_answer"}},
             {"toolmaster": _info(100, 100)}]  # a padding row: must not count
    batch = SimpleNamespace(keys=["a", "b", "c"], partition_id="train", tags=[{}, {}, {"is_padding": True}])
    seen = []

    def kv_batch_get(keys, partition_id, select_fields):
        seen.append({"keys": keys, "partition_id": partition_id, "select_fields": select_fields})
        if select_fields == ["uid"]:
            return {"uid": np.array(["p0", "p0", "p1"], dtype=object)}
        return {"extra_fields": np.array(extra, dtype=object)}

    m = _v1_step_metrics(batch, kv_batch_get=kv_batch_get)
    assert seen == [{"keys": ["a", "b", "c"], "partition_id": "train", "select_fields": ["extra_fields", "response_mask"]},
                    {"keys": ["a", "b", "c"], "partition_id": "train", "select_fields": ["uid"]}]
    assert m["toolmaster/trial_calls/mean"] == 2.0 and m["toolmaster/execute_calls/mean"] == 1.0
    assert m["reward/score/mean"] == 0.5 and m["reward/reason/correct"] == 0.5
    # one group (p0; the padding row's p1 does not count) whose two samples scored 1 and 0: a group with signal
    assert (m["toolmaster/grpo/groups"], m["toolmaster/grpo/zero_spread_share"]) == (1.0, 0.0)

    def broken(**kw):
        raise RuntimeError("queue down")

    assert _v1_step_metrics(batch, kv_batch_get=broken) == {}


def test_group_metrics_count_groups_without_reward_spread():
    from verl_toolmaster.rollout_metrics import group_metrics

    r = lambda score, answer: {"score": score, "answer": answer}  # noqa: E731
    uids = ["a", "a", "b", "b", "c", "c", "d"]
    rewards = [r(1.0, 1.0), r(1.0, 1.0),  # all correct: zero spread
               r(0.2, 0.0), r(-0.1, 0.0),  # both wrong, format differs: spread, answers not mixed
               r(1.0, 1.0), r(0.0, 0.0),  # mixed
               None]  # unscored: left out
    m = group_metrics(uids, rewards)
    assert m == {"toolmaster/grpo/groups": 3.0, "toolmaster/grpo/zero_spread_share": 1 / 3, "toolmaster/grpo/answer_mixed_share": 1 / 3}
    assert group_metrics(["a"], [None]) == {}


def test_v1_hook_checks_response_mask_against_observation_spans():
    import torch

    spans = [["trial", 0, 3], ["observation", 3, 5], ["answer", 5, 6]]
    extra = [{"toolmaster": {**_info(1, 0), "phase_spans": spans}} for _ in range(3)]
    good = [1, 1, 1, 0, 0, 1, 0, 0]  # trailing zeros: padding
    leaked = [1, 1, 1, 1, 0, 1, 0, 0]  # an observation token inside the loss
    batch = SimpleNamespace(keys=["a", "b", "c"], partition_id="train", tags=[{}, {}, {}])
    for column in (torch.tensor([good, good, leaked]),
                   torch.nested.nested_tensor([torch.tensor(good), torch.tensor(good[:6]), torch.tensor(leaked)])):
        m = _v1_step_metrics(batch, kv_batch_get=lambda **kw: {"extra_fields": np.array(extra, dtype=object),
                                                                 "response_mask": column})
        assert m["toolmaster/mask_mismatch/mean"] == 1 / 3
        assert m["toolmaster/observation_tokens/mean"] == 2.0


def test_v1_hook_takes_tensordict_columns():
    """TransferQueue hands object columns back as tensordict containers, not numpy arrays."""
    from tensordict import NonTensorData, NonTensorStack

    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    rows = [{"toolmaster": _info(4, 0)}, {"toolmaster": _info(0, 2)}]
    batch = SimpleNamespace(keys=["a", "b"], partition_id="train", tags=[{}, {}])
    stack = NonTensorStack(*[NonTensorData(r) for r in rows])
    linked = list_of_dict_to_tensordict([{"extra_fields": r, "x": i} for i, r in enumerate(rows)])["extra_fields"]
    for column in (stack, linked):
        m = _v1_step_metrics(batch, kv_batch_get=lambda **kw: {"extra_fields": column})
        assert m["toolmaster/trial_calls/mean"] == 2.0 and m["toolmaster/execute_calls/mean"] == 1.0, type(column)


def test_v1_wrapper_adds_to_the_step_metrics(monkeypatch):
    import transfer_queue

    monkeypatch.setattr(transfer_queue, "kv_batch_get", lambda **kw: {"extra_fields": [{"toolmaster": _info(2, 2)}]}, raising=False)
    calls = []

    def original(self, batch, metrics, timing_raw, global_steps, epoch):
        calls.append(global_steps)
        metrics["critic/score/mean"] = 1.0

    wrapped = _wrap_v1(original)
    metrics: dict = {}
    wrapped(object(), SimpleNamespace(keys=["k"], partition_id="train", tags=[{}]), metrics, {}, global_steps=5, epoch=0)
    assert calls == [5] and metrics["critic/score/mean"] == 1.0 and metrics["toolmaster/trial_calls/mean"] == 2.0


def test_v0_wrapper_reads_the_batch_columns():
    from verl import DataProto

    import torch

    n = 2
    tm = np.empty(n, dtype=object)
    tm[:] = [_info(1, 0), _info(3, 2)]
    batch = DataProto.from_dict(tensors={"x": torch.zeros(n, 1)}, non_tensors={"toolmaster": tm})
    m = _wrap_v0(lambda b, use_critic=True: {"base": 1.0})(batch, use_critic=False)
    assert m["base"] == 1.0 and m["toolmaster/trial_calls/mean"] == 2.0 and m["toolmaster/execute_calls/mean"] == 1.0


def test_install_step_metrics_patches_the_v1_trainer(monkeypatch):
    from verl.trainer.ppo.v1 import trainer_base

    def plain(self, batch, metrics, timing_raw, global_steps, epoch):
        pass

    monkeypatch.setattr(trainer_base.PPOTrainer, "_compute_metrics", plain)
    install_step_metrics(trainer_base)
    patched = trainer_base.PPOTrainer._compute_metrics
    assert patched is not plain and patched.__wrapped__ is plain and patched._toolmaster
    install_step_metrics(trainer_base)  # idempotent
    assert trainer_base.PPOTrainer._compute_metrics is patched
    with pytest.raises(ValueError, match="not one of the trainer modules"):
        install_step_metrics(SimpleNamespace(__name__="verl.something_else"))
