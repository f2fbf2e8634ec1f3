"""Fixtures of the evaluation-harness tests: shared benchmarks prepared once per session, in-process runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from eval_helpers import DATASETS, prepare


@pytest.fixture(scope="session")
def prepared(shared_data, tmp_path_factory):
    """``prepared(dataset)`` -> the RL parquet of that shared benchmark, prepared into a session tmp dir."""
    root = tmp_path_factory.mktemp("prepared")
    cache: dict[str, Path] = {}

    def get(dataset: str) -> Path:
        if dataset not in cache:
            cache[dataset] = prepare(dataset, shared_data / DATASETS[dataset], root / f"{dataset}.parquet")
        return cache[dataset]

    return get


@pytest.fixture(scope="session")
def eval_cache(tmp_path_factory) -> Path:
    """One --cache-dir for the session, so the gold policy's tiny tokenizer is built once."""
    return tmp_path_factory.mktemp("eval_cache")


@pytest.fixture(scope="session", autouse=True)
def _warm(eval_cache):
    """One-time costs of every run (import verl, compose ppo_trainer, build the tiny tokenizer) are paid here,
    so test durations show the cost of each test's own evaluation."""
    import verl  # noqa: F401

    from verl_toolmaster.eval.options import EvalOptions, compose_trainer_config
    from verl_toolmaster.eval.policies import tiny_tokenizer_dir

    compose_trainer_config(EvalOptions(data=[], out=eval_cache / "unused", policy="gold"))
    tiny_tokenizer_dir(eval_cache)
