"""`bash recipes/cpu/run_toyworld.sh OUT` end to end at toy sizes (TOYWORLD_BASE=tiny): the three arms train through
verl's SFT trainer and main_ppo, are validated on the held-out tools at every GRPO step, and the report is built from
what they logged."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from e2e_helpers import REPO

pytestmark = pytest.mark.slow

# two seeds (the spread and intervals need them), one GRPO step validated before and after: with three arms run one
# after another this is the slowest test of the suite, so nothing more
TOY = {"TOYWORLD_BASE": "tiny", "TOYWORLD_SEEDS": "0 1", "TOYWORLD_BASE_STEPS": "4", "TOYWORLD_SFT_STEPS": "2",
       "TOYWORLD_GRPO_STEPS": "1", "TOYWORLD_TEST_FREQ": "1", "TOYWORLD_TRAIN_TASKS": "48", "TOYWORLD_TEST_TASKS": "10"}
ARMS = ("direct", "selfcorrect", "trial")


def test_run_toyworld_writes_the_report_of_three_arms(tmp_path):
    out = tmp_path / "tw"
    run = subprocess.run(["bash", str(REPO / "recipes/cpu/run_toyworld.sh"), str(out)], capture_output=True, text=True,
                         env={**os.environ, **TOY}, timeout=3600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())  # strict JSON: a parse error fails here
    assert report["model"].startswith("tiny") and report["arms"] == list(ARMS)
    assert report["seeds"] == [0, 1]
    assert report["heldout_tasks_per_seed"] == {arm: [10, 10] for arm in ARMS}
    assert set(report["heldout_acc_by_level"]["selfcorrect"]) == {"1", "2", "3", "4", "5"}  # the controls and both new levels
    assert report["budget"]["sft_steps"] == 2 and report["budget"]["grpo_steps"] == 1 and report["budget"]["sft_levels"] == "1,2,4"
    # the report's accuracy is the held-out dumps' own (mean over seeds of the last validation's acc)
    for arm in ARMS:
        per_seed = []
        for seed in (0, 1):
            last = sorted((out / f"seed{seed}" / arm / "val").glob("*.jsonl"), key=lambda p: int(p.stem))[-1]
            per_seed.append(sum(json.loads(x)["acc"] for x in last.read_text().splitlines()) / 10)
        assert abs(report[f"{arm}_heldout_acc"] - sum(per_seed) / 2) < 1e-9, arm
    # the pre-registered verdicts rest on both seeds and on the tasks of their levels (2 of each level per seed)
    v = report["verdicts"]
    assert (v["trial_vs_selfcorrect_consequence"]["n_seeds"], v["trial_vs_selfcorrect_consequence"]["n_tasks"]) == (2, 8)
    assert v["trial_vs_direct_controls"]["n_tasks"] == 12 and v["grpo_gain_trial"]["n_tasks"] == 20
    assert all(x["verdict"] in ("trial better", "trial worse", "undecided", "GRPO gained", "GRPO lost") for x in v.values())
    # the GRPO group signal: one zero-spread share per step and seed, a share of groups
    for arm in ARMS:
        rows = report["zero_spread_share"][arm]["zero_spread_share"]["per_seed"]
        assert [len(r) for r in rows] == [1, 1] and all(0.0 <= x <= 1.0 for r in rows for x in r), rows
    assert all(report["budget"]["sft_tokens"][arm] > 0 for arm in ARMS)
    # only the trial arm's prompts ask for <trial>; validation ran before GRPO and after each of its steps
    for seed in (0, 1):
        for arm in ARMS:
            dumps = sorted((out / f"seed{seed}" / arm / "val").glob("*.jsonl"), key=lambda p: int(p.stem))
            assert [p.stem for p in dumps] == ["0", "1"]
            first = json.loads(dumps[0].read_text().splitlines()[0])
            assert ("<trial>" in first["input"]) is (arm == "trial"), (seed, arm)
            assert "toyworld/first_call_real" in first and "toyworld/target_called" in first
            lines = [json.loads(x) for x in (out / f"seed{seed}" / arm / "grpo_metrics.jsonl").read_text().splitlines()]
            assert any("reward/answer/mean" in x["data"] for x in lines)
    assert [step for step, _ in report["heldout_curve"]["trial"]["all"]] == [0, 1]
    stages = [json.loads(x)["stage"] for x in (out / "timing.jsonl").read_text().splitlines()]
    assert stages[:2] == ["tiny", "base"] and stages[-1] == "total"
    assert {"seed0_direct_sft", "seed0_selfcorrect_sft", "seed0_trial_sft", "seed1_selfcorrect_grpo"} <= set(stages)
    page = (out / "report.html").read_text()
    assert "held-out accuracy over GRPO steps" in page and "<svg" in page and "first_call_real" in page
    assert page.count("<details>") >= 3  # held-out trajectories of every arm
