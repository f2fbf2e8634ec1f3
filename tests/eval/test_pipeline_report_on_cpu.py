"""The main job's summary (python -m verl_toolmaster.eval.pipeline): paired GRPO-minus-SFT gains per level, GRPO's
per-step group shares, the last-line JSON, and report.html rendering in headless Chromium with untrusted text escaped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import Parsed, load, needs_chromium

from verl_toolmaster.eval import pipeline
from verl_toolmaster.eval.stats import summary

HOSTILE = '<script>alert("x")</script><img src=x onerror="alert(1)">'
# held-out ToyWorld rows: id -> (level, solved at base, after SFT, after GRPO)
ROWS = {f"l1-{i}": (1, 0, 1, 1) for i in range(4)} | {"l1-4": (1, 0, 1, 0)} | {"l1-5": (1, 0, 0, 1)} \
    | {f"l3-{i}": (3, 0, 0, 1) for i in range(5)} | {f"l3-{i}": (3, 0, 0, 0) for i in range(5, 8)} | {"l3-8": (3, 0, 1, 1)}


def _traj(row_id: str, level: int, answer: int, stage: str) -> dict:
    return {"id": row_id, "status": "ok", "data_source": "toyworld", "score": float(answer),
            "reward": {"answer": float(answer), "toyworld/level": level, "reason": "ok" if answer else "wrong"},
            "messages": [{"role": "user", "content": f"question {row_id} {HOSTILE}"}],
            "segments": [["execute", f"<execute>call {stage} {HOSTILE}</execute>"], ["answer", "<answer>x</answer>"]]}


def _write(path: Path, lines: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))


@pytest.fixture
def out(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    for k, stage in enumerate(pipeline.STAGES):
        trajs = [_traj(i, lv, solved[k], stage) for i, (lv, *solved) in ROWS.items()]
        d = out / "eval" / f"toyworld_{stage}"
        _write(d / "trajectories.jsonl", trajs + [{"id": "skipped", "status": "error"}])
        acc = sum(t["reward"]["answer"] for t in trajs) / len(trajs)
        (d / "metrics.json").write_text(json.dumps({"overall": {"complete": True, "n": len(trajs), "answer": acc}}))
        d = out / "eval" / f"toolhop_{stage}"
        _write(d / "trajectories.jsonl", [{"id": "h1", "status": "ok", "data_source": "toolhop", "reward": {"answer": 0.0}}])
        (d / "metrics.json").write_text(json.dumps({"overall": {"complete": True, "n": 1, "answer": 0.0}}))
    _write(out / "sft_metrics.jsonl", [{"step": s, "data": {"train/loss": 2.0 / s}} for s in (1, 2, 3)])
    # step 2 lacks the group shares: reported as null, not dropped
    _write(out / "grpo_metrics.jsonl", [
        {"step": 1, "data": {"critic/score/mean": 0.2, "reward/answer/mean": 0.25, pipeline.GROUP_KEYS["zero_spread_share"]: 0.75,
                             pipeline.GROUP_KEYS["answer_mixed_share"]: 0.25}},
        {"step": 2, "data": {"critic/score/mean": 0.4, "reward/answer/mean": 0.5}},
        {"step": 3, "data": {"critic/score/mean": 0.6, "reward/answer/mean": 0.5, pipeline.GROUP_KEYS["zero_spread_share"]: 0.5,
                             pipeline.GROUP_KEYS["answer_mixed_share"]: 0.5, pipeline.VAL_KEY: 0.4}}])
    _write(out / "pipeline_times.jsonl", [{"stage": "sft", "seconds": 100.0}, {"stage": "grpo", "seconds": 200.5}])
    (out / "run.json").write_text(json.dumps({"levels": [1, 3], "sft_levels": [1], "sft_steps": 3, "grpo_steps": 3}))
    return out


def test_gains_are_paired_per_level_and_judged_against_the_half_width(out):
    s = pipeline.build(out, "m")
    g = s["gain"]["toyworld"]
    # level 3: 5 rows go 0 -> 1, none back: mean 5/9
    diffs3 = [1.0] * 5 + [0.0] * 4
    ref = summary(diffs3)
    assert g["3"]["n"] == 9 and g["3"]["mean"] == pytest.approx(5 / 9) and g["3"]["ci95"] == pytest.approx(ref["ci95"])
    assert g["3"]["half_width"] == pytest.approx((ref["ci95"][1] - ref["ci95"][0]) / 2) and g["3"]["beyond_half_width"]
    assert (g["3"]["improved"], g["3"]["worsened"]) == (5, 0)
    # level 1: one row won, one lost: no gain
    assert g["1"]["mean"] == pytest.approx(0.0) and not g["1"]["beyond_half_width"] and (g["1"]["improved"], g["1"]["worsened"]) == (1, 1)
    assert g["not_in_sft"]["n"] == 9 and g["not_in_sft"]["mean"] == pytest.approx(5 / 9)  # level 3 is GRPO's alone
    assert g["all"]["n"] == 15 and g["all"]["mean"] == pytest.approx(5 / 15)
    # one stage's accuracy: Wilson over its rows; errored rows are not counted
    acc = s["accuracy"]["toyworld"]["grpo"]
    assert acc["3"]["solved"] == 6 and acc["3"]["n"] == 9 and acc["3"]["ci95"][0] < 6 / 9 < acc["3"]["ci95"][1]
    assert s["by_level"]["toyworld"]["sft"] == {"1": pytest.approx(5 / 6), "3": pytest.approx(1 / 9)}
    assert "toolhop" not in s["by_level"] and "toolhop" not in s["gain"]  # one row: no interval, not a gain


def test_the_gain_on_the_levels_grpo_trained_on_is_its_own_group(out):
    run = json.loads((out / "run.json").read_text())
    (out / "run.json").write_text(json.dumps({**run, "grpo_levels": [3]}))
    g = pipeline.build(out, "m")["gain"]["toyworld"]
    assert g["grpo_levels"]["n"] == 9 and g["grpo_levels"]["mean"] == pytest.approx(5 / 9)
    assert "not_in_sft" not in g  # the same rows as grpo_levels: not repeated
    (out / "run.json").write_text(json.dumps({**run, "grpo_levels": [1, 3]}))
    g = pipeline.build(out, "m")["gain"]["toyworld"]
    assert "grpo_levels" not in g and g["not_in_sft"]["n"] == 9  # GRPO trained on every level: "all" is that gain


def test_grpo_shares_are_reported_per_step_with_gaps_kept(out):
    g = pipeline.build(out, "m")["grpo"]
    assert g["steps"] == [1, 2, 3]
    assert g["zero_spread_share"] == [0.75, None, 0.5] and g["answer_mixed_share"] == [0.25, None, 0.5]
    assert g["reward"]["score"] == [[1, 0.2], [2, 0.4], [3, 0.6]] and g["heldout"] == [[3, 0.4]]


def test_main_prints_the_table_and_ends_with_the_json_line(out, capsys):
    line = pipeline.main(out, "m")
    printed = capsys.readouterr()
    last = json.loads(printed.out.strip().splitlines()[-1])
    assert last == json.loads(json.dumps(line))
    assert last["report"] == str(out / "report.html") and (out / "report.html").is_file()
    assert last["grpo"]["zero_spread_share"] == [0.75, None, 0.5]
    assert last["stage_seconds"] == {"sft": 100.0, "grpo": 200.5} and last["total_seconds"] == 300.5
    assert last["sft"]["loss"][0] == [1, 2.0]
    assert "toyworld (held-out rows)" in printed.out and "GRPO - SFT (3, 9 rows): +0.556" in printed.out
    assert "logged no toolmaster/grpo/zero_spread_share" in printed.err


def test_no_evaluation_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no evaluation under"):
        pipeline.main(tmp_path, "m")


@needs_chromium
def test_report_renders_with_charts_and_escapes_model_text(out):
    pipeline.main(out, "m")
    dom, console = load(out / "report.html")
    assert console == []
    page = Parsed(dom)
    tags = [t for t, _ in page.tags]
    assert "script" not in tags and "img" not in tags  # the hostile text stayed text
    assert tags.count("svg") >= 6  # accuracy per dataset (2), group shares, reward, held-out during GRPO, SFT loss, times
    text = "".join(page.text)
    assert HOSTILE in text and "level 3" in text and "+0.556" in text
