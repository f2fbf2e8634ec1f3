"""Call matching on the shared API-Bank, ToolRL and RoTBench rows: gold calls score 1, perturbations less."""

from __future__ import annotations

import copy

import pytest
from reward_helpers import call, episode

from verl_toolmaster.reward.scorers.calls import CallMatchScorer, RoTBenchScorer
from verl_toolmaster.reward.scorers.matching import values_match

CALLS = CallMatchScorer()
ROT = RoTBenchScorer()


def _exec(calls, **kw):
    return [call(c["name"], c["arguments"], **kw) for c in calls]


@pytest.mark.parametrize("dataset", ["apibank", "toolrl"])
def test_gold_scores_one(tasks, dataset):
    rows = tasks(dataset)
    for t in rows:
        gold = t.ground_truth["calls"]
        r = CALLS.score(t.ground_truth, episode(["done"], _exec(gold)))
        assert (r.answer, r.reason) == (1.0, "correct"), t.id
        assert r.details["calls/exact"] == 1.0
    assert any(not t.ground_truth["calls"] for t in tasks("toolrl")), "ToolRL has reply-only rows"


def _rows_with_args(rows):
    return [t for t in rows if t.ground_truth["calls"] and t.ground_truth["calls"][0]["arguments"]]


@pytest.mark.parametrize("dataset", ["apibank", "toolrl"])
def test_perturbations_score_less_in_the_documented_order(tasks, dataset):
    for t in _rows_with_args(tasks(dataset))[:40]:
        gold = t.ground_truth["calls"]
        first = gold[0]
        key = next(iter(first["arguments"]))
        wrong_value = copy.deepcopy(gold)
        wrong_value[0]["arguments"][key] = "__wrong__"
        missing = copy.deepcopy(gold)
        del missing[0]["arguments"][key]
        renamed = copy.deepcopy(gold)
        renamed[0]["name"] = first["name"] + "_x"
        n_args, n = len(first["arguments"]), len(gold)
        s_value = CALLS.score(t.ground_truth, episode(["x"], _exec(wrong_value)))
        s_missing = CALLS.score(t.ground_truth, episode(["x"], _exec(missing)))
        s_renamed = CALLS.score(t.ground_truth, episode(["x"], _exec(renamed)))
        # one wrong value: (1 + 1 + (n_args-1)/n_args)/3 for that call; other calls exact
        assert s_value.answer == pytest.approx(((1 + 1 + (n_args - 1) / n_args) / 3 + (n - 1)) / n), t.id
        # one missing parameter: key Jaccard and value accuracy both (n_args-1)/n_args
        assert s_missing.answer == pytest.approx(((1 + 2 * (n_args - 1) / n_args) / 3 + (n - 1)) / n), t.id
        assert s_renamed.answer == pytest.approx((n - 1) / n), t.id
        assert s_value.reason == s_missing.reason == "partial_match"


def test_extra_calls_and_rejected_calls(tasks):
    t = _rows_with_args(tasks("apibank"))[0]
    gold = t.ground_truth["calls"]
    spam = _exec(gold) + _exec(gold) + _exec(gold)
    assert CALLS.score(t.ground_truth, episode(["x"], spam)).answer == pytest.approx(1 / 3)
    # a call the environment rejected did not happen: the corrected retry alone is judged
    bad = call(gold[0]["name"], {}, ok=False, error_kind="schema", text="missing required argument")
    assert CALLS.score(t.ground_truth, episode(["x"], [bad] + _exec(gold))).answer == 1.0
    # trials never count as the answer
    r = CALLS.score(t.ground_truth, episode(["x"], _exec(gold, phase="trial")))
    assert (r.answer, r.reason) == (0.0, "no_call")
    # malformed arguments (raw string) are not an action
    assert CALLS.score(t.ground_truth, episode(["x"], [call(gold[0]["name"], '{"broken')])).reason == "no_call"


def test_reply_only_rows(tasks):
    t = next(t for t in tasks("toolrl") if not t.ground_truth["calls"])
    assert CALLS.score(t.ground_truth, episode(["Sure, here it is."])).answer == 1.0
    assert CALLS.score(t.ground_truth, episode([None])).reason == "no_answer"
    r = CALLS.score(t.ground_truth, episode(["x"], [call("anything", {})]))
    assert (r.answer, r.reason) == (0.0, "unexpected_call")


def test_duplicate_gold_calls_are_matched_one_to_one(tasks):
    t = next(t for t in tasks("toolrl") if len({c["name"] for c in t.ground_truth["calls"]}) < len(t.ground_truth["calls"]))
    gold = t.ground_truth["calls"]
    assert CALLS.score(t.ground_truth, episode(["x"], _exec(gold[:1]))).answer == pytest.approx(1 / len(gold))
    assert CALLS.score(t.ground_truth, episode(["x"], _exec(list(reversed(gold))))).answer == 1.0


def test_a_thousand_calls_are_scored_quickly(tasks):
    import time

    t = _rows_with_args(tasks("apibank"))[0]
    gold = t.ground_truth["calls"]
    spam = _exec(gold) * 1000
    t0 = time.perf_counter()
    r = CALLS.score(t.ground_truth, episode(["x"], spam))
    assert time.perf_counter() - t0 < 2.0
    assert r.answer == pytest.approx(1 / 1000)


# ---------------------------------------------------------------- RoTBench


def test_rotbench_every_alternative_scores_one(tasks):
    rows = tasks("rotbench")
    assert {t.ground_truth["turn"] for t in rows} == {"first", "third"}
    for t in rows:
        for alt in t.ground_truth["alternatives"]:
            r = ROT.score(t.ground_truth, episode(["x"], _exec(alt)))
            assert (r.answer, r.reason) == (1.0, "correct"), t.id
            assert (r.details["rotbench/tool_selection"], r.details["rotbench/content_filling"]) == (1.0, 1.0)


def test_rotbench_levels(tasks):
    checked = 0
    for t in tasks("rotbench"):
        alt = t.ground_truth["alternatives"][0]
        name, args = alt[0]["name"], alt[0]["arguments"]
        filled = [k for k, v in args.items() if v != "None"]
        if not filled or name in ("finish", "ask_to_user"):
            continue
        wrong_value = {**args, filled[0]: "__wrong__"}
        r = ROT.score(t.ground_truth, episode(["x"], [call(name, wrong_value)]))
        levels = (r.details["rotbench/tool_selection"], r.details["rotbench/parameter_identification"], r.details["rotbench/content_filling"])
        assert levels == (1.0, 1.0, 0.0) and r.answer == pytest.approx(2 / 3), t.id
        fewer = {k: v for k, v in args.items() if k != filled[0]}
        r = ROT.score(t.ground_truth, episode(["x"], [call(name, fewer)]))
        assert r.answer == pytest.approx(1 / 3), t.id
        r = ROT.score(t.ground_truth, episode(["x"], [call(name + "_other", args)]))
        assert (r.answer, r.reason) == (0.0, "wrong_call")
        r = ROT.score(t.ground_truth, episode(["x"], [call(name, args), call(name, wrong_value)]))
        assert r.answer == pytest.approx(1 / 2), "a second action halves the credit"
        checked += 1
    assert checked >= 10


def test_rotbench_none_valued_parameters_are_not_content_checked(tasks):
    t = next(t for t in tasks("rotbench") if any(v == "None" for v in t.ground_truth["alternatives"][0][0]["arguments"].values()))
    alt = t.ground_truth["alternatives"][0][0]
    args = {k: ("512" if v == "None" else v) for k, v in alt["arguments"].items()}
    assert ROT.score(t.ground_truth, episode(["x"], [call(alt["name"], args)])).answer == 1.0


def test_rotbench_free_text_tools_skip_content():
    gt = {"alternatives": [[{"name": "finish", "arguments": {"answer": "Paris"}}]], "level": "clean", "turn": "first"}
    assert ROT.score(gt, episode(["x"], [call("finish", {"answer": "It is Paris."})])).answer == 1.0
    gt["free_text_tools"] = ["fin1sh"]
    assert ROT.score(gt, episode(["x"], [call("finish", {"answer": "It is Paris."})])).answer == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "gold,pred,same",
    [
        ("34567890", 34567890, True),
        ("27.0", "27", True),
        ("007", 7, False),
        (True, "True", True),
        (True, 1, False),
        ("['John Smith', 'Jane Doe']", ["John Smith", "Jane Doe"], True),
        ({"a": [1, 2]}, {"a": [1, 2]}, True),
        ({"a": [1, 2]}, {"a": [2, 1]}, False),
        ("Dr. Lee", " Dr.  Lee ", True),
        ("Dr. Lee", "dr. lee", False),
        (None, "None", False),
    ],
)
def test_values_match(gold, pred, same):
    assert values_match(gold, pred) is same
