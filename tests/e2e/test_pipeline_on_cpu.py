"""Slow: the README's main job (recipes/cpu/run_pipeline.sh) end to end at toy sizes with the tiny model.

Every stage runs for real (data, evaluation of base/SFT/GRPO on both datasets, verl's sft_trainer and main_ppo) so
the script, its recipes and the summary stay runnable; the numbers mean nothing at this size (the SmolLM2 default
is measured in docs/models.md).
"""

from __future__ import annotations

import json

import pytest

from e2e_helpers import run_script

pytestmark = pytest.mark.slow


def test_pipeline_tiny(tmp_path):
    out = tmp_path / "out"
    proc = run_script("recipes/cpu/run_pipeline.sh", out, env={
        "BASE_MODEL": "tiny", "SFT_STEPS": "1", "GRPO_STEPS": "2", "TRAIN_TASKS": "16", "TEST_TASKS": "2",
        "TOOLHOP_ROWS": "1", "EVAL_CONCURRENCY": "2"})
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["model"] == "tiny"
    for dataset, n in (("toyworld", 2), ("toolhop", 1)):
        assert set(summary["eval"][dataset]) == {"base", "sft", "grpo"}
        for stage, m in summary["eval"][dataset].items():
            assert m["n"] == n and 0.0 <= m["answer"] <= 1.0 and 0.0 <= m["format"] <= 1.0, (dataset, stage, m)
    assert set(summary["by_level"]["toyworld"]["base"]) <= {"1", "2", "3"}
    assert {"base_model", "prepare_data", "eval_base", "sft", "eval_sft", "grpo", "eval_grpo"} <= set(summary["stage_seconds"])
    assert summary["total_seconds"] == pytest.approx(sum(summary["stage_seconds"].values()), abs=0.5)
    assert "toyworld (held-out rows)" in proc.stdout and "toolhop (held-out rows)" in proc.stdout
    # GRPO's signal is reported for every step it took, and the report page is written
    assert summary["grpo"]["steps"] == [1, 2]
    assert len(summary["grpo"]["zero_spread_share"]) == 2 and all(0.0 <= v <= 1.0 for v in summary["grpo"]["zero_spread_share"])
    assert summary["report"] == str(out / "report.html") and "held-out accuracy by stage" in (out / "report.html").read_text()
    assert [step for step, _ in summary["sft"]["loss"]] == [1]

    # FROM=grpo reruns only GRPO and its evaluation, keeping the base and SFT results
    before = (out / "eval" / "toyworld_sft" / "metrics.json").read_text()
    proc = run_script("recipes/cpu/run_pipeline.sh", out, env={
        "BASE_MODEL": "tiny", "FROM": "grpo", "GRPO_STEPS": "1", "TRAIN_TASKS": "16", "TEST_TASKS": "2",
        "TOOLHOP_ROWS": "1", "EVAL_CONCURRENCY": "2"})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    assert (out / "eval" / "toyworld_sft" / "metrics.json").read_text() == before
    assert "] SFT (" not in proc.stdout and "] GRPO (" in proc.stdout  # the stage banners
    assert json.loads(proc.stdout.strip().splitlines()[-1])["grpo"]["steps"] == [1]  # the earlier run's steps are gone
