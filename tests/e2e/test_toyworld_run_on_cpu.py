"""`bash recipes/cpu/run_toyworld.sh OUT` end to end at toy sizes: both arms train through verl's SFT trainer and
main_ppo, are validated on the held-out tools, and the report is built from what they logged."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from e2e_helpers import REPO

pytestmark = pytest.mark.slow

TOY = {"TOYWORLD_SEEDS": "0 1", "TOYWORLD_BASE_STEPS": "4", "TOYWORLD_SFT_STEPS": "2", "TOYWORLD_GRPO_STEPS": "1",
       "TOYWORLD_TRAIN_TASKS": "48", "TOYWORLD_TEST_TASKS": "6"}


def test_run_toyworld_writes_the_report_of_both_arms(tmp_path):
    out = tmp_path / "tw"
    run = subprocess.run(["bash", str(REPO / "recipes/cpu/run_toyworld.sh"), str(out)], capture_output=True, text=True,
                         env={**os.environ, **TOY}, timeout=1800)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())  # strict JSON: a parse error fails here
    for key in ("direct_heldout_acc", "trial_heldout_acc", "seed_spread"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["seeds"] == [0, 1]
    assert report["heldout_tasks_per_seed"] == {"direct": [6, 6], "trial": [6, 6]}
    # the trial arm ran with trial_mode on and the direct arm with it off: only the trial arm's prompts ask for <trial>
    for seed in (0, 1):
        for arm, trial_text in (("trial", True), ("direct", False)):
            dumps = sorted((out / f"seed{seed}" / arm / "val").glob("*.jsonl"))
            assert [p.stem for p in dumps] == ["0", "1"]
            first = json.loads(dumps[0].read_text().splitlines()[0])
            assert ("<trial>" in first["input"]) is trial_text, (seed, arm)
            lines = [json.loads(x) for x in (out / f"seed{seed}" / arm / "grpo_metrics.jsonl").read_text().splitlines()]
            assert any("reward/answer/mean" in x["data"] for x in lines)
    stages = [json.loads(x)["stage"] for x in (out / "timing.jsonl").read_text().splitlines()]
    assert stages[:2] == ["tiny", "base"] and stages[-1] == "total"
    assert {"seed0_direct_sft", "seed0_trial_sft", "seed1_direct_grpo", "seed1_trial_grpo"} <= set(stages)
    page = (out / "report.html").read_text()
    assert "held-out accuracy" in page and "<svg" in page and "toyworld/answer_seen" in page
