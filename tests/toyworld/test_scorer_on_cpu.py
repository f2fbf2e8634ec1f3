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
