"""The ground truths the adapters write are what the scorers read: replaying a task's gold trace scores 1."""

from __future__ import annotations

from collections import Counter

import pytest

from verl_toolmaster.data import InvalidRecord, get_adapter
from verl_toolmaster.reward.scorers import Episode, load_builtin_scorers


def gold_episode(task) -> Episode:
    calls = [
        {"phase": "execute", "turn": turn, "name": c["name"], "arguments": c["arguments"], "ok": True, "error_kind": None, "text": "", "latency_s": 0.0}
        for turn, steps in enumerate(task.gold)
        for step in steps
        for c in step
    ]
    answers = list(task.gold_answers) if task.gold_answers else ["done"] * (1 + len(task.follow_up))
    return Episode(answers=answers, calls=calls, env_spec=task.env)


@pytest.mark.parametrize("dataset", ["toolhop", "apibank", "toolrl", "rotbench", "bfcl"])
def test_gold_traces_score_correct(dataset, shared_data):
    scorers = load_builtin_scorers()
    adapter = get_adapter(dataset)()
    reasons: Counter = Counter()
    for rec in adapter.records(shared_data / dataset):
        try:
            task = adapter.convert(rec)
        except InvalidRecord:
            continue  # the known ToolRL skips; counted in test_adapters
        if task.gold is None:
            continue
        result = scorers[task.source]().score(task.ground_truth, gold_episode(task))
        reasons[(task.source, result.reason)] += 1
        assert result.answer == 1.0, (task.id, result)
    assert sum(reasons.values()) >= 5


def test_a_wrong_call_does_not_score(shared_data):
    """The check above can fail: the same episode with one argument changed is not correct."""
    adapter = get_adapter("apibank")()
    task = adapter.convert(next(iter(adapter.records(shared_data / "apibank"))))
    ep = gold_episode(task)
    ep.calls[0]["arguments"] = {**ep.calls[0]["arguments"], "appointment_id": "00000000"}
    assert load_builtin_scorers()["apibank"]().score(task.ground_truth, ep).answer < 1.0
