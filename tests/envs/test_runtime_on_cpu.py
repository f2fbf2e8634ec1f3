"""Sandbox, BFCL and StableToolBench settings come from the trainer config, validated, and reach the process."""

from __future__ import annotations

import subprocess
import sys

import pytest
from omegaconf import OmegaConf

from verl_toolmaster.agent_config import load_config


def _rollout(**toolmaster):
    return OmegaConf.create({"multi_turn": {"format": "hermes"}, "custom": {"toolmaster": toolmaster}})


def test_settings_reach_the_pools_of_the_process():
    """In a fresh interpreter: the loop config applies them (as each agent-loop worker does when it reads it)."""
    code = """
from omegaconf import OmegaConf
from verl_toolmaster.agent_loop import _cached_config
from verl_toolmaster.envs import bfcl_env, http_env, sandbox_pool
rollout = OmegaConf.create({"multi_turn": {"format": "hermes"}, "custom": {"toolmaster": {
    "sandbox": {"workers": 1, "limits": {"timeout_s": 3, "memory_mb": 512}},
    "bfcl": {"timeout_s": 4.5, "workers": 1}, "http": {"deadline_s": 12, "retries": 0}}}})
_cached_config(OmegaConf.create({}), rollout, None)
pool = sandbox_pool.get_pool()
print(pool.size, pool.config.limits.timeout_s, pool.config.limits.memory_mb, bfcl_env.bfcl_runtime().timeout_s,
      http_env.get_client().config.deadline_s, http_env.get_client().config.retries)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "3", "512", "4.5", "12", "0"]


def test_entry_and_custom_sections_merge_key_by_key():
    cfg = load_config(_rollout(sandbox={"limits": {"cpu_s": 2}}), {"sandbox": {"workers": 3, "limits": {"timeout_s": 9}}})
    assert (cfg.runtime.sandbox.workers, cfg.runtime.sandbox.limits.timeout_s, cfg.runtime.sandbox.limits.cpu_s) == (3, 9, 2)
    assert cfg.runtime.bfcl is None and cfg.runtime.http is None  # untouched sections keep the process defaults


@pytest.mark.parametrize("toolmaster, message", [
    ({"sandbox": {"limts": {}}}, r"custom.toolmaster.sandbox: unknown key\(s\) \['limts'\]"),
    ({"sandbox": {"limits": {"timeout_s": 0}}}, "custom.toolmaster.sandbox.limits: sandbox limits: timeout_s=0 must be > 0"),
    ({"sandbox": {"limits": {"memory_mb": "big"}}}, "custom.toolmaster.sandbox.limits.memory_mb='big' must be a int"),
    ({"sandbox": {"workers": -1}}, "sandbox: workers=-1 must be >= 0"),
    ({"sandbox": 3}, "custom.toolmaster.sandbox must be a mapping"),
    ({"bfcl": {"timeout_s": -1}}, "custom.toolmaster.bfcl: bfcl: timeout_s=-1 must be > 0"),
    ({"http": {"deadline_s": 0}}, "custom.toolmaster.http: http: deadline_s=0 must be > 0"),
    ({"http": {"retries": 1.5}}, "custom.toolmaster.http.retries=1.5 must be a int"),
])
def test_bad_settings_name_the_key(toolmaster, message):
    with pytest.raises(ValueError, match=message):
        load_config(_rollout(**toolmaster))
