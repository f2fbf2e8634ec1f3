"""Fixtures of the synthesis tests: RL rows prepared from the shared benchmark files, and one scripted run over them."""

from __future__ import annotations

from pathlib import Path

import pytest
from synth_helpers import prepare, synth


@pytest.fixture(scope="session")
def rl_data(shared_data, tmp_path_factory) -> dict[str, Path]:
    """RL parquet (prepare.py, in-process): all ToolHop dev rows, a few BFCL multi-turn (base, miss_func, miss_param)
    and API-Bank rows."""
    d = tmp_path_factory.mktemp("rl")
    return {
        "toolhop": prepare(shared_data, d / "toolhop.parquet", "toolhop", "toolhop"),
        "bfcl": prepare(shared_data, d / "bfcl.parquet", "bfcl", "bfcl", "--categories", "multi_turn_base", "--limit", "2"),
        "bfcl_miss": prepare(
            shared_data,
            d / "bfcl_miss.parquet",
            "bfcl",
            "bfcl",
            "--categories",
            "multi_turn_miss_func,multi_turn_miss_param",
            "--limit",
            "2",
        ),
        "apibank": prepare(shared_data, d / "apibank.parquet", "apibank", "apibank", "--limit", "6"),
    }


@pytest.fixture(scope="session")
def scripted_run(rl_data, tiny_model_dir, tmp_path_factory):
    """One scripted-teacher run over every prepared file, two variants per task."""
    out = tmp_path_factory.mktemp("synth") / "sft.parquet"
    run = synth("scripted", list(rl_data.values()), out, "--per-task", "2", tokenizer=tiny_model_dir)
    assert run.code == 0, run.stderr
    return run, out
