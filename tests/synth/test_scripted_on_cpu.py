"""Scripted teacher on shared ToolHop, BFCL multi-turn and API-Bank rows: every written trajectory is re-checked
independently - its observations are replayed against a fresh real environment, the RL scorer re-scores the
replayed call log, and it has a trial and a failed probe that a later call fixed."""

from __future__ import annotations

import json
from collections import Counter

from synth_helpers import assert_sound, rl_rows, synth, written

from verl_toolmaster.synth.quality import message_text
from verl_toolmaster.synth.scripted import gold_of


def test_every_written_trajectory_is_sound(scripted_run, rl_data):
    run, out = scripted_run
    rl = {}
    for path in rl_data.values():
        rl.update(rl_rows(path))
    rows = written(out)
    assert len(rows) == run.summary["written"] == run.summary["kept"]
    by_source = Counter(r["data_source"] for r in rows)
    assert set(by_source) == {"toolhop", "bfcl_multi", "apibank"}
    for row in rows:
        assert_sound(row, rl[row["task_id"]])


def test_counts_and_drop_reasons(scripted_run, rl_data):
    run, out = scripted_run
    s = run.summary
    assert s["items"] == s["kept"] + sum(s["dropped"].values()) + sum(s["failed"].values())
    assert s["failed"] == {}
    toolhop = rl_rows(rl_data["toolhop"])
    without_gold = [t for t, r in toolhop.items() if gold_of(r) is None]
    assert without_gold, "the dev slice has ToolHop rows without a gold trace"
    assert s["dropped"].get("no_gold_trace") == 2 * len(without_gold)  # two variants each
    kept_ids = {r["task_id"] for r in written(out)}
    assert kept_ids.isdisjoint(without_gold)
    assert {t for t, r in toolhop.items() if gold_of(r) is not None} <= kept_ids
    assert all(r in ("no_gold_trace", "gold_call_rejected") for r in s["dropped"]), s["dropped"]


def test_multi_turn_rows_follow_every_user_turn(scripted_run, rl_data):
    _, out = scripted_run
    rl = {**rl_rows(rl_data["bfcl"]), **rl_rows(rl_data["bfcl_miss"])}
    rows = [r for r in written(out) if r["data_source"] == "bfcl_multi"]
    assert {r["task_id"] for r in rows} == set(rl)
    for row in rows:
        task = rl[row["task_id"]]
        follow_up = json.loads(task["extra_info"]["follow_up"])
        users = [m["content"] for m in row["messages"][len(task["prompt"]) :] if m["role"] == "user"]
        for text in follow_up:  # each later request appears (a miss_func turn is prefixed with the new tools)
            assert any(u.endswith(text) for u in users)
        answers = [m for m in row["messages"] if m["role"] == "assistant" and m["content"].startswith("<answer>")]
        assert len(answers) == 1 + len(follow_up)


def test_variety_and_determinism(scripted_run, rl_data, tiny_model_dir, tmp_path):
    run, out = scripted_run
    rows = written(out)
    kinds = Counter(k for k in run.summary["kept_stats"] if k.startswith("probe:"))
    assert len(kinds) >= 2, run.summary["kept_stats"]
    first_trials = {next(m["content"] for m in r["messages"] if m["role"] == "assistant") for r in rows}
    assert len(first_trials) >= len(rows) // 2  # the reasoning text varies
    pairs = {}
    for r in rows:
        pairs.setdefault(r["task_id"], []).append([message_text(m) for m in r["messages"] if m["role"] == "assistant"])
    assert any(a != b for a, b in (v for v in pairs.values() if len(v) == 2))  # variants of one task differ

    again = synth("scripted", [rl_data["toolhop"]], tmp_path / "a.parquet", "--per-task", "2", tokenizer=tiny_model_dir)
    same = [r for r in rows if r["data_source"] == "toolhop"]
    assert written(tmp_path / "a.parquet") == same  # same seed: byte-identical trajectories
    other = synth("scripted", [rl_data["toolhop"]], tmp_path / "b.parquet", "--per-task", "2", "--seed", "7", tokenizer=tiny_model_dir)
    assert other.summary["kept"] == again.summary["kept"]
    assert written(tmp_path / "b.parquet") != same


def test_failed_probe_is_corrected_in_trial_or_execute(rl_data, tiny_model_dir, tmp_path):
    """Both correction styles occur when asked for: fixed by a second trial, or by the first execute (a self-correction)."""
    in_trial = synth(
        "scripted", [rl_data["toolhop"]], tmp_path / "t.parquet", "--fix-in-trial", "1", "--execute-error", "0", tokenizer=tiny_model_dir
    )
    in_exec = synth(
        "scripted", [rl_data["toolhop"]], tmp_path / "e.parquet", "--fix-in-trial", "0", "--execute-error", "0", tokenizer=tiny_model_dir
    )
    for row in written(tmp_path / "t.parquet"):
        phases = [m["content"][1:6] for m in row["messages"] if m["role"] == "assistant"]
        assert phases[:2] == ["trial", "trial"], phases
    assert in_trial.summary["kept_stats"].get("self_corrections", 0) == 0
    for row in written(tmp_path / "e.parquet"):
        phases = [m["content"][1:6] for m in row["messages"] if m["role"] == "assistant"]
        assert phases[:2] == ["trial", "execu"], phases
    assert in_exec.summary["kept_stats"]["self_corrections"] == in_exec.summary["kept"]


def test_the_soundness_check_can_fail(scripted_run, rl_data):
    """The independent check above rejects an invented observation and a wrong answer."""
    import copy

    import pytest

    _, out = scripted_run
    row = written(out)[0]
    task = rl_rows(rl_data[{"toolhop": "toolhop", "bfcl_multi": "bfcl", "apibank": "apibank"}[row["data_source"]]]).get(row["task_id"])
    task = task or rl_rows(rl_data["bfcl_miss"])[row["task_id"]]
    bad = copy.deepcopy(row)
    i = next(i for i, m in enumerate(bad["messages"]) if m["role"] == "tool")
    bad["messages"][i]["content"] += " (invented)"
    with pytest.raises(AssertionError, match="not what the environment returns"):
        assert_sound(bad, task)
    bad = copy.deepcopy(row)
    j = max(i for i, m in enumerate(bad["messages"]) if m["role"] == "assistant")
    bad["messages"][j]["content"] = "<answer>certainly not the answer</answer>"
    with pytest.raises(AssertionError, match="RL scorer"):
        assert_sound(bad, task)
