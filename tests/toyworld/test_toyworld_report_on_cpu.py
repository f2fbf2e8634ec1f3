"""The experiment report: means, spread and intervals over seeds from the runs' own logs, per level, diagnostics,
learning curves of held-out accuracy, trajectories; missing inputs are errors."""

from __future__ import annotations

import json
import math

import pytest

from verl_toolmaster.toyworld import diagnostics as diag
from verl_toolmaster.toyworld import report as rep

# (after SFT, after GRPO) held-out accuracy per arm and seed, 4 tasks each (levels 1, 2, 1, 2)
ACC = {"direct": {0: (0.25, 0.5), 1: (0.25, 0.25), 2: (0.0, 0.5)},
       "selfcorrect": {0: (0.5, 0.5), 1: (0.25, 0.5), 2: (0.5, 0.75)},
       "trial": {0: (0.5, 0.75), 1: (0.25, 1.0), 2: (0.5, 1.0)}}
RUN = {"model": "SmolLM2-135M-Instruct", "budget": {"sft_steps": 3, "grpo_steps": 2}}


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _samples(acc: float, n: int = 4):
    k = round(acc * n)
    return [{"acc": 1.0 if i < k else 0.0, "toyworld/level": 1 + i % 2, "score": 0.0, "gts": json.dumps({"task": i})} for i in range(n)]


def make_out(tmp_path, arms=ACC, run=RUN):
    for arm, seeds in arms.items():
        for seed, (sft_acc, grpo_acc) in seeds.items():
            d = tmp_path / f"seed{seed}" / arm
            _write(d / "sft_metrics.jsonl", [{"step": s, "data": {"train/loss": 2.0 / s, "train/global_tokens": 100.0 * s}} for s in (1, 2, 3)])
            _write(d / "grpo_metrics.jsonl", [{"step": 0, "data": {rep.VAL_KEY: sft_acc}}]
                   + [{"step": s, "data": {**{k: 0.1 * s for k in rep.COMPONENTS}, rep.GROUP_KEYS[0]: 0.5 / s, rep.GROUP_KEYS[1]: 0.25 * s}}
                      for s in (1, 2)]
                   + [{"step": 2, "data": {rep.VAL_KEY: grpo_acc}}])
            _write(d / "val" / "0.jsonl", _samples(sft_acc))
            _write(d / "val" / "2.jsonl", _samples(grpo_acc))
    _write(tmp_path / "timing.jsonl", [{"stage": "data", "wall_s": 60.0, "cpu_s": 100.0, "rc": 0}])
    if run is not None:
        (tmp_path / "run.json").write_text(json.dumps(run))
    return tmp_path


def test_report_numbers(tmp_path):
    out = make_out(tmp_path)
    assert rep.main([str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    assert r["model"] == "SmolLM2-135M-Instruct" and r["arms"] == ["direct", "selfcorrect", "trial"]
    grpo = {arm: [v[1] for v in seeds.values()] for arm, seeds in ACC.items()}
    for arm, values in grpo.items():
        assert r[f"{arm}_heldout_acc"] == pytest.approx(sum(values) / 3)
    sd = {arm: math.sqrt(sum((x - sum(v) / 3) ** 2 for x in v) / 2) for arm, v in grpo.items()}
    assert r["seed_spread"] == pytest.approx(max(sd.values()))
    half = 4.303 * sd["trial"] / math.sqrt(3)
    assert r["trial_grpo"]["ci95"] == pytest.approx([sum(grpo["trial"]) / 3 - half, sum(grpo["trial"]) / 3 + half])
    assert r["direct_sft"]["values"] == [0.25, 0.25, 0.0]
    assert r["margin_vs_selfcorrect"] == pytest.approx(r["trial_heldout_acc"] - r["selfcorrect_heldout_acc"])
    assert r["margin"] == r["margin_vs_direct"] == pytest.approx(r["trial_heldout_acc"] - r["direct_heldout_acc"])
    assert r["trial_beats_selfcorrect_beyond_spread"] == (r["margin_vs_selfcorrect"] > r["seed_spread"])
    # per level: trial after GRPO solves level 1 in every seed, level 2 in 1 of 2, 2 of 2, 2 of 2
    assert r["by_level"]["trial"]["grpo"]["1"]["values"] == [1.0, 1.0, 1.0]
    assert r["by_level"]["trial"]["grpo"]["2"]["values"] == [0.5, 1.0, 1.0]
    assert r["heldout_acc_by_level"]["trial"] == {"1": pytest.approx(1.0), "2": pytest.approx(2.5 / 3)}
    # the learning curve of held-out accuracy: the validated steps, mean over seeds
    assert r["heldout_curve"]["selfcorrect"]["all"] == [[0, pytest.approx(1.25 / 3)], [2, pytest.approx(1.75 / 3)]]
    assert r["budget"] == {"sft_steps": 3, "grpo_steps": 2, "sft_tokens": {"direct": 600.0, "selfcorrect": 600.0, "trial": 600.0}}
    page = (out / "report.html").read_text()
    assert "<svg" in page and "reward/answer/mean" in page and "held-out accuracy over GRPO steps, level 2" in page
    assert "selfcorrect" in page and "SmolLM2-135M-Instruct" in page


def test_pooled_tasks_and_paired_margins(tmp_path):
    out = make_out(tmp_path)
    assert rep.main([str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    # after GRPO trial solved 3, 4, 4 of the 4 tasks per seed: 11 of 12 pooled
    p = r["pooled"]["trial"]["grpo"]["all"]
    assert (p["solved"], p["n"], p["acc"]) == (11, 12, pytest.approx(11 / 12))
    assert p["ci95"] == pytest.approx([0.6461, 0.9851], abs=1e-4)  # Wilson 95% for 11/12
    assert r["pooled"]["direct"]["sft"]["1"]["solved"] == 2 and r["pooled"]["direct"]["sft"]["1"]["n"] == 6
    # paired on the same tasks: trial solved 6 of the 12 that direct missed, direct none that trial missed
    d = r["paired"]["direct"]["grpo"]["all"]
    assert (d["n"], d["trial_only"], d["other_only"], d["mean"]) == (12, 6, 0, pytest.approx(0.5))
    half = 2.201 * math.sqrt(3 / 11) / math.sqrt(12)
    assert d["ci95"] == pytest.approx([0.5 - half, 0.5 + half]) and d["verdict"] == "trial better"
    assert r["paired"]["direct"]["grpo"]["2"]["trial_only"] == 3 and r["paired"]["direct"]["grpo"]["1"]["n"] == 6
    # after SFT selfcorrect solved 2, 1, 2 and trial 2, 1, 2: the same tasks, no difference shown
    sc = r["paired"]["selfcorrect"]["sft"]["all"]
    assert (sc["mean"], sc["trial_only"], sc["other_only"], sc["verdict"]) == (0.0, 0, 0, "no difference shown")
    page = (out / "report.html").read_text()
    assert "Paired on the same 12 held-out tasks: +0.500" in page and "11/12" in page


def test_cluster_bootstrap_intervals_and_preregistered_verdicts(tmp_path):
    out = make_out(tmp_path)
    assert rep.main([str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    # trial minus direct after GRPO, per seed and task: [0,0,1,0], [0,1,1,1], [0,0,1,1] (levels 1,2,1,2): never below 0
    v = r["verdicts"]["trial_vs_direct_controls"]
    assert (v["n_seeds"], v["n_tasks"], v["mean"], v["levels"]) == (3, 12, pytest.approx(0.5), ["1", "2", "3"])
    assert 0 < v["ci95"][0] < 0.5 < v["ci95"][1] <= 1.0 and v["verdict"] == "trial better"
    assert r["verdicts"]["trial_vs_direct_consequence"]["verdict"] == "no tasks"  # levels 4-5 were not in this run
    # trial minus selfcorrect after GRPO: seed 0 +0.25, seed 1 +0.5, seed 2 +0.25 (all >= 0 task by task)
    assert r["verdicts"]["trial_vs_selfcorrect_all"]["mean"] == pytest.approx(1 / 3)
    # GRPO minus SFT per arm, paired on the same tasks: direct gained 0.25, 0, 0.5 over the seeds
    g = r["verdicts"]["grpo_gain_direct"]
    assert g["mean"] == pytest.approx(0.25) and g["ci95"][0] >= 0 and g["verdict"] in ("GRPO gained", "undecided")
    acc = r["cluster"]["accuracy"]["trial"]["grpo"]["all"]
    assert acc["mean"] == pytest.approx(11 / 12) and acc["ci95"][0] < 11 / 12 <= acc["ci95"][1] <= 1.0
    assert set(r["cluster"]["trial_minus"]["direct"]["sft"]) == {"all", "controls", "1", "2"}
    # the GRPO group signal per step, per seed and averaged
    z = r["zero_spread_share"]["trial"]
    assert z["zero_spread_share"]["mean_per_step"] == [pytest.approx(0.5), pytest.approx(0.25)]
    assert z["answer_mixed_share"]["per_seed"] == [[0.25, 0.5]] * 3


def test_cluster_bootstrap_counts_seeds_as_clusters():
    # two seeds whose tasks agree within the seed but not across: a task-level interval would be narrow around 0.5,
    # the seed-level one spans both seeds' means
    clusters = [[("1", 1.0)] * 20, [("1", 0.0)] * 20]
    b = rep.cluster_bootstrap(clusters, None)
    assert b["mean"] == 0.5 and b["ci95"] == [0.0, 1.0] and (b["n_seeds"], b["n_tasks"]) == (2, 40)
    same = rep.cluster_bootstrap([[("1", 1.0), ("2", 0.0)]] * 3, ("2",))
    assert same["ci95"] == [0.0, 0.0] and same["n_tasks"] == 3
    assert rep.cluster_bootstrap(clusters, ("5",))["n_tasks"] == 0


def test_arms_validated_on_different_tasks_is_an_error(tmp_path, capsys):
    out = make_out(tmp_path)
    path = out / "seed1" / "direct" / "val" / "2.jsonl"
    samples = [json.loads(x) for x in path.read_text().splitlines()]
    _write(path, [{**s, "gts": json.dumps({"task": 9})} if i == 0 else s for i, s in enumerate(samples)])
    assert rep.main([str(out)]) == 1
    assert "seed1: trial and direct were validated on different held-out tasks (grpo)" in capsys.readouterr().err
    _write(path, [{k: v for k, v in s.items() if k != "gts"} for s in samples])
    assert rep.main([str(out)]) == 1
    assert "seed1/direct/val (grpo): a held-out sample has no 'gts'" in capsys.readouterr().err


def test_missing_validation_dump_is_an_error(tmp_path, capsys):
    out = make_out(tmp_path)
    (out / "seed1" / "trial" / "val" / "2.jsonl").unlink()
    assert rep.main([str(out)]) == 1
    assert "seed1/trial/val: expected validation dumps before and after GRPO" in capsys.readouterr().err


def test_missing_arm_or_run_info_is_an_error(tmp_path, capsys):
    out = make_out(tmp_path, run=None)
    assert rep.main([str(out)]) == 1
    assert "run.json: missing" in capsys.readouterr().err
    (out / "run.json").write_text(json.dumps(RUN))
    for p in sorted((out / "seed2" / "selfcorrect").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    (out / "seed2" / "selfcorrect").rmdir()
    assert rep.main([str(out)]) == 1
    assert "arms ['selfcorrect'] missing" in capsys.readouterr().err


def test_no_seeds_is_an_error(tmp_path, capsys):
    (tmp_path / "run.json").write_text(json.dumps(RUN))
    assert rep.main([str(tmp_path)]) == 1
    assert "no seed<N> directories" in capsys.readouterr().err


def _sample(acc, level, calls, errors, fixes, called, seen, real=None, documented=None, output=""):
    return {"acc": acc, "toyworld/level": level, "trial_calls": calls[0], "execute_calls": calls[1], "tool_errors": errors,
            "self_corrections": fixes, "toyworld/target_called": called, "toyworld/answer_seen": seen,
            "toyworld/first_call_real": real, "toyworld/first_call_documented": documented, "input": '{"name": "red_fox"}', "output": output}


def test_diagnostics_explain_failures_per_level():
    samples = [
        _sample(1.0, 2, (1, 1), 1, 1, 1.0, 1.0, 0.0, 1.0, '{"name": "red_fox"}'),  # probed as documented, fixed, solved
        _sample(0.0, 2, (0, 1), 1, 0, 1.0, 0.0, 0.0, 1.0, '{"name": "red_fox"}'),  # kept the stale name: call_failed
        _sample(0.0, 1, (0, 0), 0, 0, 0.0, 0.0),  # no_call
        _sample(0.0, 1, (0, 2), 0, 0, 0.0, 0.0, output='{"name": "blue_fox"}'),  # a name not offered: wrong_tool
        _sample(0.0, 1, (0, 1), 0, 0, 1.0, 1.0, 1.0, None, '{"name": "red_fox"}'),  # right call, wrong answer
    ]
    s = diag.summarize(samples)
    assert s["n"] == 5 and s["calls_per_task"] == pytest.approx(6 / 5) and s["trials_per_task"] == pytest.approx(1 / 5)
    assert s["failures"] == {"no_call": 0.2, "wrong_tool": 0.2, "call_failed": 0.2, "wrong_answer": 0.2}
    assert s["toyworld/first_call_documented"] == 1.0 and s["toyworld/first_call_real"] == pytest.approx(1 / 3)
    assert s["solved_after_an_error"] == 0.5 and s["self_corrections"] == pytest.approx(1 / 5)
    assert s["call_names_in_prompt"] == 0.75  # red_fox offered three times, blue_fox not
    levels = {lv: diag.summarize(part) for lv, part in diag.by_level(samples).items()}
    assert list(levels) == ["1", "2"] and levels["2"]["failures"]["call_failed"] == 0.5 and levels["1"]["failures"]["call_failed"] == 0.0


def test_diagnostics_in_the_report_with_one_seed_and_strict_json(tmp_path):
    out = make_out(tmp_path, {arm: {0: seeds[0]} for arm, seeds in ACC.items()})
    for arm in ACC:
        path = out / "seed0" / arm / "val" / "2.jsonl"
        samples = [json.loads(x) for x in path.read_text().splitlines()]
        _write(path, [{**s, "toyworld/answer_seen": s["acc"], "toyworld/target_called": 1.0, "trial_calls": 0.0, "execute_calls": 2.0,
                       "output": "<tool_call>x</tool_call>", "input": "system\n...user\nWhat is the sum of 1 and 2?"} for s in samples])
    _write(out / "timing.jsonl", [{"stage": "data", "wall_s": 60.0, "cpu_s": 100.0, "rc": 0},
                                  {"stage": "total", "wall_s": 1500, "cpu_s": None, "rc": 0}])
    assert rep.main([str(out)]) == 0
    text = (out / "report.json").read_text()
    r = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert r["trial_grpo"]["ci95"] == [None, None] and r["seed_spread"] == 0.0  # one seed: no interval, no spread
    d = r["diagnostics"]["direct"]["grpo"]
    assert d["all"]["execute_calls"] == 2.0 and d["all"]["failures"]["call_failed"] == 0.5  # 2 of 4 failed, target called, result unseen
    assert set(d) == {"all", "1", "2"} and r["diagnostics"]["direct"]["sft"]["all"]["n"] == 4
    page = (out / "report.html").read_text()
    assert "Wall time of the whole run: 25.0 min" in page and "first_call_documented" in page
    assert "Trial - direct: +0.250, larger than the seed-to-seed spread (0.000)" in page
    # per arm and level, one solved and one failed trajectory where there is one: trial (0.75) failed no level-1 task
    assert page.count("<details>") == 4 + 4 + 3
    assert "failed (call_failed)" in page and "What is the sum of 1 and 2?" in page
