"""Fixtures of the agent-loop tests (helpers live in loop_harness.py)."""

from __future__ import annotations

import os

import pytest
from loop_harness import CounterEnv


@pytest.fixture(scope="session")
def base_config(tiny_model_dir):
    import verl
    from hydra import compose, initialize_config_dir

    cfg_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cfg_dir, version_base=None):
        cfg = compose(
            "ppo_trainer",
            overrides=[
                f"actor_rollout_ref.model.path={tiny_model_dir}",
                "actor_rollout_ref.rollout.name=vllm",
                "actor_rollout_ref.rollout.prompt_length=3072",
                "actor_rollout_ref.rollout.response_length=1536",
                "data.max_prompt_length=3072",
                "data.max_response_length=1536",
                "actor_rollout_ref.rollout.multi_turn.enable=true",
                "actor_rollout_ref.rollout.multi_turn.max_tool_response_length=512",
            ],
        )
    return cfg


@pytest.fixture(autouse=True)
def _reset_envs():
    CounterEnv.created.clear()
    yield


