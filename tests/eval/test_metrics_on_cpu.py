"""metrics.json aggregation, verl's validation names, and the resume state of the output directory."""

from __future__ import annotations

import json

import pytest

from verl_toolmaster.eval import metrics as metrics_mod
from verl_toolmaster.eval.store import StoreError, TrajectoryStore
from verl_toolmaster.eval.verl_metrics import validation_metrics


def traj(i, source, answer, *, trial=0, execute=0, errors=0, termination="answered", split="test", level="none", status="ok", turns=3):
    if status != "ok":
        return {"id": f"r{i}", "status": status, "data_source": source, "split": split, "level": level}
    reward = {"score": answer - 0.1, "answer": answer, "acc": float(answer >= 1.0), "format": 1.0, "trial": 0.0, "cost": 0.0,
              "trial_calls": float(trial), "execute_calls": float(execute), "self_corrections": 0.0, "tool_errors": float(errors),
              "violations": 0.0, "toolhop/hops": None if source != "toolhop" else 2.0, "reason": "correct" if answer == 1.0 else "wrong_answer"}
    return {"id": f"r{i}", "status": "ok", "data_source": source, "split": split, "level": level, "score": reward["score"], "reward": reward,
            "termination": termination, "counts": {"assistant_turns": turns}, "num_turns": 2 * turns + 1, "prompt_truncated": False}


TRAJS = [
    traj(0, "toolhop", 1.0, trial=1, execute=3, errors=1),
    traj(1, "toolhop", 0.0, execute=2, termination="turn_budget", level="perturbed"),
    traj(2, "apibank", 0.5, trial=2, execute=2, errors=2, split="train"),
    traj(3, "apibank", 0.0, status="no_gold"),
    traj(4, "toolhop", 0.0, status="bad_gold"),
]


def test_means_exclude_rows_the_gold_policy_did_not_run_and_error_rate_is_pooled():
    m = metrics_mod.compute(TRAJS, gold=True)
    overall = m["overall"]
    assert overall["n"] == 3 and overall["no_gold"] == 1 and overall["bad_gold"] == 1
    assert overall["answer"] == pytest.approx(0.5) and overall["acc"] == pytest.approx(1 / 3)
    assert overall["trial_calls"] == pytest.approx(1.0) and overall["execute_calls"] == pytest.approx(7 / 3)
    assert overall["tool_error_rate"] == pytest.approx(3 / 10)  # failed calls / all calls, not a mean of ratios
    assert overall["terminations"] == {"answered": 2, "turn_budget": 1}
    assert m["by_source"]["apibank"]["n"] == 1 and m["by_source"]["apibank"]["no_gold"] == 1
    assert m["by_source"]["toolhop"]["bad_gold"] == 1 and m["by_source"]["toolhop"]["answer"] == pytest.approx(0.5)
    assert set(m["by_split"]) == {"test", "train"} and m["by_split"]["train"]["answer"] == 0.5
    assert m["by_level"]["perturbed"]["answer"] == 0.0 and m["by_level"]["none"]["n"] == 2
    empty = metrics_mod.summarize([TRAJS[3]], gold=True)
    assert empty["n"] == 0 and empty["answer"] is None and empty["tool_error_rate"] is None
    assert "no_gold" not in metrics_mod.summarize(TRAJS[:3], gold=False)


def test_verl_names_carry_the_same_numbers():
    verl = validation_metrics(TRAJS)
    by_source = metrics_mod.compute(TRAJS, gold=True)["by_source"]
    for source in ("toolhop", "apibank"):
        assert verl[f"val-core/{source}/acc/mean@1"] == pytest.approx(by_source[source]["acc"])
        for key in ("answer", "score", "format", "trial_calls", "execute_calls", "tool_errors"):
            assert verl[f"val-aux/{source}/{key}/mean@1"] == pytest.approx(by_source[source][key]), key
        assert verl[f"val-aux/{source}/reward/mean@1"] == pytest.approx(by_source[source]["score"])
    assert verl["val-aux/toolhop/toolhop/hops/mean@1"] == 2.0 and "val-aux/apibank/toolhop/hops/mean@1" not in verl
    assert not any("reason" in k for k in verl)  # strings are not metrics, as in verl
    assert verl["val-aux/num_turns/max"] == 7.0


def test_verl_names_match_the_trainers_own_validation_metric_update():
    """The naming rule is verl's: compare with ``PPOTrainer._val_metrics_update`` itself (imports the trainer)."""
    import importlib

    from verl_toolmaster.compat import MODULES

    trainer = importlib.import_module(MODULES["trainer_v1"]).PPOTrainer
    ran = [t for t in TRAJS if t["status"] == "ok"]
    infos = {"reward": [t["score"] for t in ran], **{k: [t["reward"][k] for t in ran] for k in ran[0]["reward"]}}
    expected = trainer._val_metrics_update(
        None, [t["data_source"] for t in ran], [t["id"] for t in ran], infos, [t["num_turns"] for t in ran],
        expected_acc_counts={(t["data_source"], t["id"]): 1 for t in ran},
    )
    ours = validation_metrics(TRAJS)
    assert sorted(ours) == sorted(expected)
    for k, v in expected.items():
        assert ours[k] == pytest.approx(float(v)), k


def test_store_drops_a_cut_last_line_and_refuses_a_corrupt_one(tmp_path):
    path = tmp_path / "trajectories.jsonl"
    path.write_text(json.dumps({"id": "a"}) + "\n" + json.dumps({"id": "b"}) + "\n" + '{"id": "c", "sta')
    store = TrajectoryStore(tmp_path)
    store.load()
    assert sorted(store.done) == ["a", "b"] and store.dropped_partial_line
    store.append({"id": "c", "status": "ok"})
    store.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == ["a", "b", "c"]
    path.write_text(json.dumps({"id": "a"}) + "\nnot json\n" + json.dumps({"id": "b"}) + "\n")
    with pytest.raises(StoreError, match="line 2: not valid JSON"):
        TrajectoryStore(tmp_path).load()


def test_store_refuses_to_resume_a_run_with_other_settings(tmp_path):
    run = {"policy": "gold", "trial_mode": "on", "loop": {"max_turns": 16, "trial_mode": "on"}, "sampling": {"temperature": 0.0}}
    store = TrajectoryStore(tmp_path)
    store.check_run(run)
    store.append({"id": "a"})
    store.close()
    again = TrajectoryStore(tmp_path)
    again.load()
    again.check_run(dict(run))  # same settings: fine
    with pytest.raises(StoreError, match=r"loop\.max_turns: 16 -> 24.*new --out"):
        again.check_run({**run, "loop": {"max_turns": 24, "trial_mode": "on"}})
