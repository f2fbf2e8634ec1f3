"""The toyworld scorer: final-answer match, with the level and whether the right call was made as details."""

from __future__ import annotations

import pytest

from verl_toolmaster.reward.scorers import Episode, load_builtin_scorers

GT = {"answer": "12", "level": 2, "op": "add"}
GOOD_CALL = {"phase": "execute", "turn": 0, "name": "age", "arguments": {"bank": 5, "yang": 7}, "ok": True, "error_kind": None, "text": '{"sum": 12}'}


def scorer():
    return load_builtin_scorers()["toyworld"]()


@pytest.mark.parametrize(
    "answers, calls, answer, reason, seen",
    [
        (["12"], [GOOD_CALL], 1.0, "correct", 1.0),
        ([" 12.0 "], [GOOD_CALL], 1.0, "correct", 1.0),
        (["13"], [GOOD_CALL], 0.0, "wrong_answer", 1.0),
        (["12"], [], 1.0, "correct", 0.0),  # a lucky guess is right but shows no call
        ([None], [GOOD_CALL], 0.0, "no_answer", 1.0),
        ([""], [{**GOOD_CALL, "ok": False, "text": "Error: ..."}], 0.0, "no_answer", 0.0),
    ],
)
def test_scores(answers, calls, answer, reason, seen):
    res = scorer().score(GT, Episode(answers=answers, calls=calls))
    assert (res.answer, res.reason) == (answer, reason)
    assert res.details == {"toyworld/level": 2.0, "toyworld/answer_seen": seen}


def test_text_answers_are_normalised():
    res = scorer().score({"answer": "old-common", "level": 1}, Episode(answers=["Old-Common"]))
    assert res.answer == 1.0


def test_malformed_ground_truth_raises():
    with pytest.raises(ValueError, match="'answer' must be a string"):
        scorer().score({"answer": 12}, Episode(answers=["12"]))


# "age" documents "player" for its real "bank" (level 2); "tree" is a correctly documented distractor
SPEC = {"kind": "toyworld",
        "tools": [{"type": "function", "function": {"name": "age", "description": "", "parameters": {"type": "object", "properties": {"player": {"type": "integer"}, "yang": {"type": "integer"}}, "required": ["player", "yang"]}}},
                  {"type": "function", "function": {"name": "tree", "description": "", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}}, "required": ["a", "b"]}}}],
        "impl": {"age": {"op": "add", "params": [["bank", "integer"], ["yang", "integer"]], "label": "sum"},
                 "tree": {"op": "multiply", "params": [["a", "integer"], ["b", "integer"]], "label": "product"}}}
STALE = {**GOOD_CALL, "arguments": {"player": 5, "yang": 7}, "ok": False, "text": "Error: unknown argument"}
OTHER = {**GOOD_CALL, "name": "tree", "arguments": {"a": 5, "b": 7}, "text": '{"product": 35}'}


@pytest.mark.parametrize(
    "calls, called, real, documented",
    [
        ([], 0.0, None, None),  # never called: no first call to judge
        ([OTHER], 0.0, None, None),  # only the distractor
        ([OTHER, STALE, GOOD_CALL], 1.0, 0.0, 1.0),  # first call of the target as documented, then corrected
        ([{**STALE, "phase": "trial"}, GOOD_CALL], 1.0, 0.0, 1.0),  # a trial counts as the first call too
        ([GOOD_CALL, STALE], 1.0, 1.0, 0.0),  # the real names right away
        ([{**GOOD_CALL, "arguments": "{bad json", "ok": False}], 1.0, 0.0, 0.0),
    ],
)
def test_first_call_details(calls, called, real, documented):
    res = scorer().score({**GT, "tool": "age"}, Episode(answers=["12"], calls=calls, env_spec=SPEC))
    got = {k: res.details.get(k) for k in ("toyworld/target_called", "toyworld/first_call_real", "toyworld/first_call_documented")}
    assert got == {"toyworld/target_called": called, "toyworld/first_call_real": real, "toyworld/first_call_documented": documented}


def test_correct_documentation_has_no_documented_share():
    """Where the docs are right (level 1) a first call cannot be told to follow them rather than the truth."""
    spec = {**SPEC, "impl": {**SPEC["impl"], "age": {**SPEC["impl"]["age"], "params": [["player", "integer"], ["yang", "integer"]]}}}
    call = {**GOOD_CALL, "arguments": {"player": 5, "yang": 7}}
    res = scorer().score({**GT, "level": 1, "tool": "age"}, Episode(answers=["12"], calls=[call], env_spec=spec))
    assert res.details["toyworld/first_call_real"] == 1.0 and "toyworld/first_call_documented" not in res.details
