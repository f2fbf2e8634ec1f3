"""Slow: the CPU main job's recipes with the real base model, SmolLM2-135M-Instruct, through verl's own trainers.

* ``sft_trainer`` (recipes/cpu/pipeline_sft.yaml) for 2 steps on ToyWorld trial-and-execution rows: the loss falls
  on the repeated batch and the HF export keeps the fixed end of turn and the tool-rendering chat template;
* ``main_ppo`` (recipes/cpu/pipeline_grpo.yaml) for 1 GRPO step with toolmaster_agent and a live sandboxed tool, the
  hfcpu server (instead of the recipe's vLLM) in scripted mode (trial call -> execute call -> answer, log-probs from SmolLM2's forward pass), so
  the step checks the real rollout -> reward -> fp32 update -> weight-sync path on this model's tokenizer and
  generic (llama) token builder.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest

from e2e_helpers import REPO, parse_steps
from verl_toolmaster.data.smoke import ADD_TOOL, write_smoke_run

pytestmark = pytest.mark.slow


def _env(tmp_path, **extra: str) -> dict[str, str]:
    env = dict(os.environ, VERL_PLATFORM="cpu", TOKENIZERS_PARALLELISM="false", TOOLMASTER_OUT=str(tmp_path / "out"),
               OMP_NUM_THREADS=str(os.cpu_count() or 1), **extra)
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    return env


def test_sft_two_steps(smollm2_model_dir, tmp_path):
    data = tmp_path / "toyworld"
    subprocess.run([sys.executable, "-m", "verl_toolmaster.toyworld.generate", "--out", str(data), "--seed", "3",
                    "--train-tasks", "8", "--tools", "8", "--test-tasks", "2", "--no-progress"], check=True, capture_output=True)
    metrics = tmp_path / "sft_metrics.jsonl"
    proc = subprocess.run(
        ["torchrun", "--standalone", "--nproc_per_node=1", "-m", "verl.trainer.sft_trainer",
         "--config-path", str(REPO / "recipes/cpu"), "--config-name", "pipeline_sft", f"model.path={smollm2_model_dir}",
         f"data.train_files={data / 'sft_trial.parquet'}", "trainer.total_training_steps=2",
         f"trainer.default_local_dir={tmp_path / 'ckpt'}"],
        capture_output=True, text=True, env=_env(tmp_path, VERL_FILE_LOGGER_PATH=str(metrics)), timeout=1500)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-5000:]
    losses = [json.loads(line)["data"]["train/loss"] for line in metrics.read_text().splitlines()]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert losses[1] < losses[0], losses  # the same 8 rows twice: a working update lowers their loss
    export = tmp_path / "ckpt" / "global_step_2" / "huggingface"
    assert (export / "model.safetensors").is_file()
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(export))
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert json.loads((export / "generation_config.json").read_text())["eos_token_id"] == tok.eos_token_id
    rendered = tok.apply_chat_template([{"role": "user", "content": "q"}], tools=[ADD_TOOL], tokenize=False,
                                       add_generation_prompt=True)
    assert "<tools>" in rendered and rendered.endswith("\n<|im_start|>assistant\n")


def test_grpo_one_step(smollm2_model_dir, tmp_path):
    data, script = write_smoke_run(tmp_path, 4)
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(REPO / "recipes/cpu"),
         "--config-name", "pipeline_grpo", f"actor_rollout_ref.model.path={smollm2_model_dir}",
         f"data.train_files={data}", f"data.val_files={data}", "data.train_batch_size=2",
         "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
         "trainer.total_training_steps=1", f"trainer.default_local_dir={tmp_path / 'grpo_ckpt'}", "trainer.logger=[console]",
         "actor_rollout_ref.rollout.name=hfcpu",  # scripted mode is hfcpu's (vLLM: test_vllm_rollout_on_cpu.py)
         # the recipe's bypass mode takes the rollout's log-probs as PPO's old ones; with it off the actor recomputes
         # them, which the check below compares with the server's
         "algorithm.rollout_correction.bypass_mode=false"],
        capture_output=True, text=True, env=_env(tmp_path, TOOLMASTER_HFCPU_SCRIPT=str(script)), timeout=1500)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    steps = parse_steps(log)
    assert sorted(steps) == [1], f"steps seen: {sorted(steps)}"
    m = steps[1]
    # the fp32 actor recomputes the server's log-probs: the weights and the tokens both line up
    assert m["training/rollout_probs_diff_mean"] < 1e-3, m["training/rollout_probs_diff_mean"]
    # scripted rollouts give every trajectory of a group the same reward: zero advantage, a zero but finite gradient
    assert math.isfinite(m["actor/pg_loss"]) and math.isfinite(m["actor/grad_norm"])
    assert m["toolmaster/trial_calls/mean"] == 1.0 and m["toolmaster/execute_calls/mean"] == 1.0
    assert m["toolmaster/termination/answered"] == 1.0 and m["toolmaster/tool_errors/mean"] == 0.0
    assert m["reward/answer/mean"] == 1.0 and m["reward/format/mean"] == 1.0
    assert m["toolmaster/mask_mismatch/mean"] == 0.0 and m["toolmaster/observation_tokens/mean"] > 0
