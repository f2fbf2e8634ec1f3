"""The experiment report: means, spread and intervals over seeds from the runs' own logs; missing inputs are errors."""

from __future__ import annotations

import json
import math

import pytest

from verl_toolmaster.toyworld import report as rep

ACC = {"direct": {0: (0.25, 0.5), 1: (0.25, 0.25), 2: (0.0, 0.5)}, "trial": {0: (0.5, 0.75), 1: (0.25, 1.0), 2: (0.5, 1.0)}}  # (after SFT, after GRPO)


def _write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _samples(acc: float, n: int = 4):
    k = round(acc * n)
    return [{"acc": 1.0 if i < k else 0.0, "toyworld/level": 1 + i % 2, "score": 0.0} for i in range(n)]


def make_out(tmp_path, arms=ACC):
    for arm, seeds in arms.items():
        for seed, (sft_acc, grpo_acc) in seeds.items():
            d = tmp_path / f"seed{seed}" / arm
            _write(d / "sft_metrics.jsonl", [{"step": s, "data": {"train/loss": 2.0 / s}} for s in (1, 2, 3)])
            _write(d / "grpo_metrics.jsonl", [{"step": 0, "data": {rep.VAL_KEY: sft_acc}}]
                   + [{"step": s, "data": {k: 0.1 * s for k in rep.COMPONENTS}} for s in (1, 2)]
                   + [{"step": 2, "data": {rep.VAL_KEY: grpo_acc}}])
            _write(d / "val" / "0.jsonl", _samples(sft_acc))
            _write(d / "val" / "2.jsonl", _samples(grpo_acc))
    _write(tmp_path / "timing.jsonl", [{"stage": "base", "wall_s": 60.0, "cpu_s": 100.0, "rc": 0}])
    return tmp_path


def test_report_numbers(tmp_path):
    out = make_out(tmp_path)
    assert rep.main([str(out)]) == 0
    r = json.loads((out / "report.json").read_text())
    direct, trial = [v[1] for v in ACC["direct"].values()], [v[1] for v in ACC["trial"].values()]
    assert r["direct_heldout_acc"] == pytest.approx(sum(direct) / 3)
    assert r["trial_heldout_acc"] == pytest.approx(sum(trial) / 3)
    sd_direct = math.sqrt(sum((x - sum(direct) / 3) ** 2 for x in direct) / 2)
    sd_trial = math.sqrt(sum((x - sum(trial) / 3) ** 2 for x in trial) / 2)
    assert r["seed_spread"] == pytest.approx(max(sd_direct, sd_trial))
    half = 4.303 * sd_trial / math.sqrt(3)
    assert r["trial_grpo"]["ci95"] == pytest.approx([sum(trial) / 3 - half, sum(trial) / 3 + half])
    assert r["direct_sft"]["values"] == [0.25, 0.25, 0.0]
    assert r["trial_beats_direct_beyond_spread"] == (r["margin"] > r["seed_spread"])
    assert r["by_level"]["trial"]["grpo"] == {"1": pytest.approx(1.0), "2": pytest.approx((0.5 + 1 + 1) / 3)}
    page = (out / "report.html").read_text()
    assert "<svg" in page and "reward/answer/mean" in page and "held-out accuracy" in page


def test_missing_validation_dump_is_an_error(tmp_path, capsys):
    out = make_out(tmp_path)
    (out / "seed1" / "trial" / "val" / "2.jsonl").unlink()
    assert rep.main([str(out)]) == 1
    assert "seed1/trial/val: expected validation dumps before and after GRPO" in capsys.readouterr().err


def test_no_seeds_is_an_error(tmp_path, capsys):
    assert rep.main([str(tmp_path)]) == 1
    assert "no seed<N> directories" in capsys.readouterr().err


def test_diagnostics_total_time_and_strict_json_with_one_seed(tmp_path):
    out = make_out(tmp_path, {arm: {0: seeds[0]} for arm, seeds in ACC.items()})
    for arm in ("direct", "trial"):
        for step, seen in (("0", 0.0), ("2", 1.0)):
            path = out / "seed0" / arm / "val" / f"{step}.jsonl"
            samples = [json.loads(x) for x in path.read_text().splitlines()]
            _write(path, [{**s, "toyworld/answer_seen": seen, "execute_calls": 2.0, "input": '{"name": "red_fox"}',
                           "output": '{"name": "red_fox"} {"name": "blue_fox"}' if seen else ""} for s in samples])
    _write(out / "timing.jsonl", [{"stage": "base", "wall_s": 60.0, "cpu_s": 100.0, "rc": 0},
                                  {"stage": "total", "wall_s": 1500, "cpu_s": None, "rc": 0}])
    assert rep.main([str(out)]) == 0
    text = (out / "report.json").read_text()
    r = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    assert r["trial_grpo"]["ci95"] == [None, None] and r["seed_spread"] == 0.0  # one seed: no interval, no spread
    assert r["diagnostics"]["trial"]["sft"] == {"toyworld/answer_seen": 0.0, "execute_calls": 2.0}
    assert r["diagnostics"]["direct"]["grpo"]["toyworld/answer_seen"] == 1.0
    assert r["diagnostics"]["direct"]["grpo"]["call_names_in_prompt"] == 0.5  # red_fox offered, blue_fox not
    page = (out / "report.html").read_text()
    assert "Wall time of the whole run: 25.0 min" in page and "toyworld/answer_seen" in page
    assert "trial 0.750, direct 0.500; margin +0.250 is larger than the seed-to-seed spread (0.000)" in page
