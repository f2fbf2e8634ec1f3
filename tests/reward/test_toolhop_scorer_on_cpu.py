"""ToolHop scorer on the shared dev rows: gold answers score 1, perturbed answers 0, sub-answer hits diagnostic."""

from __future__ import annotations

import pytest

from verl_toolmaster.reward.scorers.matching import answers_match, normalize_text, parse_number
from verl_toolmaster.reward.scorers.toolhop import ToolHopScorer

from reward_helpers import call, episode

SCORER = ToolHopScorer()


def test_every_gold_answer_scores_one(tasks):
    rows = tasks("toolhop")
    assert len(rows) == 10
    for t in rows:
        r = SCORER.score(t.ground_truth, episode([t.ground_truth["answer"]]))
        assert (r.answer, r.reason) == (1.0, "correct"), t.id


def _variants(gold: str) -> list[str]:
    """Surface variants the normalisation must accept: case, padding, trailing period, number formats."""
    out = [f"  {gold.upper()} ", f"{gold}.", f"'{gold}'"]
    if parse_number(gold) is not None:
        out += [f"{gold}.0", f"{float(gold):.2f}"]
    return out


def test_normalised_variants_of_gold_score_one(tasks):
    for t in tasks("toolhop"):
        for v in _variants(t.ground_truth["answer"]):
            assert SCORER.score(t.ground_truth, episode([v])).answer == 1.0, (t.id, v)


def test_perturbed_answers_score_zero(tasks):
    for t in tasks("toolhop"):
        gold = t.ground_truth["answer"]
        num = parse_number(gold)
        wrong = str(int(num) + 1) if num is not None else gold + "x"
        for bad, reason in ((wrong, "wrong_answer"), (f"{gold} or {wrong}", "wrong_answer"), ("", "no_answer"), (None, "no_answer")):
            r = SCORER.score(t.ground_truth, episode([bad]))
            assert (r.answer, r.reason) == (0.0, reason), (t.id, bad)


def test_trial_calls_never_answer(tasks):
    t = tasks("toolhop")[0]
    gold = t.ground_truth["answer"]
    r = SCORER.score(t.ground_truth, episode([None], [call("f", {}, phase="trial", text=gold)]))
    assert r.answer == 0.0 and r.reason == "no_answer"


@pytest.mark.parametrize(
    "gold,pred,same",
    [
        ("324", "324.0", True),
        ("324", "324.", True),
        ("1000", "1,000", True),
        ("0.5", ".5", True),
        ("324", "3240", False),
        ("Renée", "renee", True),
        ("Chiang Ching-kuo", "chiang ching kuo", True),
        ("ca", "C A", False),
        ("imgnix", "Imgnix!", True),
        ("a", "", False),
    ],
)
def test_answer_normalisation(gold, pred, same):
    assert answers_match(gold, pred) is same


def test_normalize_text_keeps_articles():
    assert normalize_text("The  Answer, is: A") == "the answer is a"


def test_sub_answer_hits_count_hops_seen_in_observations(tasks):
    for t in tasks("toolhop"):
        subs = list(t.ground_truth["sub_answers"].values())
        texts = [f"result: {subs[0]}", f"found {subs[1]}!"]
        calls = [call("f", {}, text=texts[0]), call("g", {}, phase="trial", text=texts[1])]
        r = SCORER.score(t.ground_truth, episode([None], calls))
        haystack = " " + normalize_text(" ".join(texts)) + " "
        seen = sum(1 for s in subs if f" {normalize_text(s)} " in haystack)
        assert seen >= 2
        assert r.details["toolhop/hops"] == len(subs)
        assert r.details["toolhop/sub_answer_hits"] == pytest.approx(seen / len(subs)), t.id


def test_bad_ground_truth_raises_naming_the_field():
    with pytest.raises(ValueError, match="answer"):
        SCORER.score({"answer": 15, "sub_answers": {}}, episode(["15"]))
