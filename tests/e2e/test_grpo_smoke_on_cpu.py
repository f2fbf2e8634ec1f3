"""Slow: verl's main_ppo on CPU with toolmaster_agent, a live sandboxed tool and the toolmaster reward.

The rollout server runs in scripted mode (trial call -> execute call -> answer, real log-probs), so every
trajectory makes real tool calls whatever the random tiny model would sample; everything else is the real
GRPO path: agent loop, sandboxed python environment, reward manager, advantage, FSDP2 update, weight sync.
"""

from __future__ import annotations

import json

import pytest

from e2e_helpers import parse_steps, run_script
from verl_toolmaster.data.smoke import write_smoke_run

pytestmark = pytest.mark.slow

def test_grpo_steps_with_tool_calls(tmp_path):
    data, script = write_smoke_run(tmp_path, 8)
    rollouts = tmp_path / "rollouts"
    proc = run_script("recipes/cpu/run_grpo_tiny.sh", tmp_path / "out",
                      "trainer.total_training_steps=2", "trainer.save_freq=2", f"trainer.rollout_data_dir={rollouts}",
                      "data.max_prompt_length=1024", "data.max_response_length=256",
                      env={"TRAIN_DATA": str(data), "TOOLMASTER_HFCPU_SCRIPT": str(script)})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    steps = parse_steps(log)
    assert sorted(steps) == [1, 2], f"steps seen: {sorted(steps)}"
    for n, m in steps.items():
        # rollout log-probs (HF server) agree with the FSDP actor's recomputation after each weight sync
        assert m["training/rollout_probs_diff_mean"] < 1e-3, (n, m["training/rollout_probs_diff_mean"])
        assert "actor/pg_loss" in m and "actor/grad_norm" in m
        # every trajectory trialled once, executed once on the real env and answered
        assert m["toolmaster/trial_calls/mean"] == 1.0 and m["toolmaster/execute_calls/mean"] == 1.0
        assert m["toolmaster/tool_errors/mean"] == 0.0
        assert m["toolmaster/termination/answered"] == 1.0
        assert m["critic/score/mean"] >= 1.0  # correct answer, in protocol (+ trial bonus)
        # the reward's components reach the step metrics
        assert m["reward/answer/mean"] == 1.0 and m["reward/format/mean"] == 1.0 and m["reward/trial/mean"] > 0
        # tool responses are in the response but outside the loss: response_mask is 0 exactly on them
        assert m["toolmaster/observation_tokens/mean"] > 0
        assert m["toolmaster/mask_mismatch/mean"] == 0.0
    ckpt = tmp_path / "out" / "grpo_ckpt" / "global_step_2"
    assert ckpt.is_dir() and any(ckpt.rglob("*.pt")), f"no checkpoint in {ckpt}"
    dumps = [json.loads(line) for f in rollouts.glob("*.jsonl") for line in f.read_text().splitlines()]
    assert dumps, "no rollout dump"
    # the sandboxed tool really ran: its results are in the conversation as tool responses (verl's dump decodes
    # with special tokens skipped, so <tool_response> and <|im_start|> are gone from the text)
    assert all("\nuser\n\n2\n\nassistant\n<execute>" in d["output"] for d in dumps), dumps[0]["output"]
    assert all("\nuser\n\n5\n\nassistant\n<answer>5</answer>" in d["output"] for d in dumps), dumps[0]["output"]
    assert all(d["score"] > 1.0 for d in dumps)  # answer 1 plus the trial bonus: the probe preceded execution


def test_grpo_step_samples_through_the_batched_server(tmp_path):
    """Without a script the hfcpu server samples with the batching engine, many trajectories at once: a step
    completes and the rollout log-probs agree with the actor's recomputation."""
    proc = run_script("recipes/cpu/run_grpo_tiny.sh", tmp_path / "out", "trainer.total_training_steps=1",
                      "trainer.val_before_train=false", "trainer.save_freq=-1")
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    steps = parse_steps(log)
    assert sorted(steps) == [1], f"steps seen: {sorted(steps)}"
    assert steps[1]["training/rollout_probs_diff_mean"] < 1e-3, steps[1]["training/rollout_probs_diff_mean"]
    assert steps[1]["response_length/mean"] > 0
