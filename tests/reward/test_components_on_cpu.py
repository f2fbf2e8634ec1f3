"""The reward's components (format, trial, cost) as documented in docs/reward.md, and reward-hacking checks
run through the manager on token-level trajectories."""

from __future__ import annotations

import asyncio

import pytest
from omegaconf import OmegaConf
from reward_helpers import Step, build_trajectory, make_batch

from verl_toolmaster.reward.components import combine, cost_score, format_score, trial_score
from verl_toolmaster.reward.config import ToolMasterRewardConfig
from verl_toolmaster.reward.manager import ToolMasterRewardManager

CFG = ToolMasterRewardConfig()


def c(name, phase="execute", ok=True, turn=0):
    return {"phase": phase, "turn": turn, "name": name, "arguments": {}, "ok": ok, "error_kind": None if ok else "exception", "text": ""}


def record(calls=(), violations=None, turns=None):
    return {
        "calls": list(calls),
        "turns": turns if turns is not None else [{"phase": "answer", "user_turn": 0, "violation": None, "n_calls": 0}],
        "counts": {"violations": violations or {}},
        "phase_spans": [],
    }


# ---------------------------------------------------------------- definitions


def test_format_loses_a_fixed_amount_per_violation():
    assert format_score(record(), CFG) == (1.0, 0)
    assert format_score(record(violations={"no_tag": 1}), CFG) == (0.75, 1)
    assert format_score(record(violations={"no_tag": 2, "bad_json": 1, "answer_missing": 1}), CFG) == (0.0, 4)
    assert format_score(record(violations={"bad_json": 40}), CFG)[0] == 0.0


def test_trial_usefulness_definition():
    assert trial_score([c("a"), c("b")]) == (0.0, 0.0, 0.0, 0)  # no trials
    # probed a and b, executed both: precision 1, coverage 1
    assert trial_score([c("a", "trial"), c("b", "trial"), c("a"), c("b")])[0] == 1.0
    # probed a, executed a and b: precision 1, coverage 1/2 -> F1 2/3
    t, p, cov, _ = trial_score([c("a", "trial"), c("a"), c("b")])
    assert (p, cov) == (1.0, 0.5) and t == pytest.approx(2 / 3)
    # probing tools that are never executed is not useful
    t, p, cov, _ = trial_score([c("a", "trial"), c("x", "trial"), c("y", "trial"), c("a")])
    assert (p, cov) == (pytest.approx(1 / 3), 1.0) and t == pytest.approx(0.5)
    # a failed trial whose tool then executed fine: the error was avoided, the trial counts as useful
    t, p, cov, avoided = trial_score([c("a", "trial", ok=False), c("a")])
    assert (t, avoided) == (1.0, 1)
    # a trial after the execution it could have informed is not "probed first"
    assert trial_score([c("a"), c("a", "trial")])[0] == 0.0
    # an execution that failed does not make the trial useful
    assert trial_score([c("a", "trial"), c("a", ok=False)])[0] == 0.0


def test_cost_counts_calls_and_turns_beyond_per_user_turn_budgets():
    cfg = ToolMasterRewardConfig(trial_call_budget=2, execute_call_budget=3, turn_budget=4, cost_per_excess=0.1)
    calls = [c("a", "trial")] * 3 + [c("a")] * 5 + [c("a", turn=1)] * 3
    turns = [{"phase": "execute", "user_turn": 0, "violation": None, "n_calls": 1}] * 6
    cost, excess = cost_score(record(calls, turns=turns), cfg)
    assert excess == 1 + 2 + 0 + 2  # trial 3>2, execute 5>3 (turn 0), execute 3<=3 (turn 1), turns 6>4
    assert cost == pytest.approx(0.5)
    assert cost_score(record([c("a")] * 500), cfg)[0] == 1.0


def test_score_formula_and_trial_gate():
    rec = record([c("a", "trial"), c("a")], violations={"no_tag": 1})
    full = combine(1.0, rec, CFG)
    assert full.score == pytest.approx(CFG.w_answer + CFG.w_format * (0.75 - 1) + CFG.w_trial * 1.0)
    partial = combine(0.6, rec, CFG)  # below correct_threshold: no trial bonus
    assert partial.score == pytest.approx(CFG.w_answer * 0.6 + CFG.w_format * (0.75 - 1))
    assert not partial.correct and partial.trial == 1.0
    lenient = ToolMasterRewardConfig(correct_threshold=0.5)
    assert combine(0.6, rec, lenient).score == pytest.approx(0.6 + 0.5 * -0.25 + 0.2 * 0.6)
    none = combine(1.0, None, CFG)
    assert (none.format, none.trial, none.cost, none.score) == (0.0, 0.0, 0.0, pytest.approx(1.0 - CFG.w_format))


# ---------------------------------------------------------------- reward hacking, through the manager


def score_all(tokenizer, samples, **kwargs):
    async def run():
        manager = ToolMasterRewardManager(OmegaConf.create({"reward": {"reward_kwargs": kwargs}}), tokenizer, None)
        batch = make_batch(tokenizer, samples)
        return [await manager.run_single(batch[i : i + 1]) for i in range(len(batch))]

    return asyncio.run(run())


@pytest.fixture(scope="module")
def toolhop_task(tasks):
    return tasks("toolhop")[0]


def _toolhop(tokenizer, task, steps):
    return {"traj": build_trajectory(tokenizer, steps), "source": "toolhop", "gt": task.ground_truth}


def test_trials_without_a_correct_answer_earn_nothing(tiny_tokenizer, toolhop_task):
    gold = toolhop_task.ground_truth["answer"]
    probe = Step("trial", "what does f return", [{"name": "f", "arguments": {"x": 1}}])
    run = Step("execute", "use f", [{"name": "f", "arguments": {"x": 2}}])
    with_trials_wrong, no_trials_wrong, with_trials_right, no_trials_right = score_all(
        tiny_tokenizer,
        [
            _toolhop(tiny_tokenizer, toolhop_task, [probe, run, Step("answer", "wrong")]),
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step("answer", "wrong")]),
            _toolhop(tiny_tokenizer, toolhop_task, [probe, run, Step("answer", gold)]),
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step("answer", gold)]),
        ],
    )
    assert with_trials_wrong["reward_extra_info"]["trial"] == 1.0  # the trials were useful...
    assert with_trials_wrong["reward_score"] == no_trials_wrong["reward_score"]  # ...but pay nothing without the answer
    assert with_trials_right["reward_score"] == pytest.approx(no_trials_right["reward_score"] + CFG.w_trial)


def test_trial_spam_without_answer_scores_no_more_than_nothing(tiny_tokenizer, toolhop_task):
    spam = [Step("trial", "probe", [{"name": f"t{i}", "arguments": {}}]) for i in range(6)]
    spammed, plain = score_all(
        tiny_tokenizer,
        [_toolhop(tiny_tokenizer, toolhop_task, spam + [Step("answer", "wrong")]), _toolhop(tiny_tokenizer, toolhop_task, [Step("answer", "wrong")])],
    )
    assert spammed["reward_score"] < plain["reward_score"]


def test_spamming_calls_lowers_the_score(tiny_tokenizer, tasks, toolhop_task):
    gold = toolhop_task.ground_truth["answer"]
    few = [Step("execute", "go", [{"name": "f", "arguments": {"i": 0}}]), Step("answer", gold)]
    many = [Step("execute", "go", [{"name": "f", "arguments": {"i": i}} for i in range(40)]), Step("answer", gold)]
    api = next(t for t in tasks("apibank") if t.ground_truth["calls"])
    gold_calls = api.ground_truth["calls"]
    api_few = [Step("execute", "go", gold_calls), Step("answer", "done")]
    api_many = [Step("execute", "go", gold_calls * 12), Step("answer", "done")]
    r = score_all(
        tiny_tokenizer,
        [
            _toolhop(tiny_tokenizer, toolhop_task, few),
            _toolhop(tiny_tokenizer, toolhop_task, many),
            {"traj": build_trajectory(tiny_tokenizer, api_few), "source": "apibank", "gt": api.ground_truth},
            {"traj": build_trajectory(tiny_tokenizer, api_many), "source": "apibank", "gt": api.ground_truth},
        ],
    )
    assert r[1]["reward_extra_info"]["cost"] > 0 and r[1]["reward_score"] < r[0]["reward_score"]
    assert r[3]["reward_score"] < r[2]["reward_score"]
    assert r[3]["reward_extra_info"]["answer"] < r[2]["reward_extra_info"]["answer"] == 1.0


def test_answering_without_protocol_tags_scores_below_answering_with_them(tiny_tokenizer, toolhop_task):
    gold = toolhop_task.ground_truth["answer"]
    run = Step("execute", "go", [{"name": "f", "arguments": {}}])
    r = score_all(
        tiny_tokenizer,
        [
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step("answer", gold)]),
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step(None, gold)]),  # bare answer
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step(None, f"The answer is <answer>{gold}")]),  # unclosed
            {"text": f"{gold}<|im_end|>", "source": "toolhop", "gt": toolhop_task.ground_truth, "record": "absent"},
            _toolhop(tiny_tokenizer, toolhop_task, [run, Step(None, f"I think it is {gold}"), Step("answer", gold)]),
        ],
    )
    assert r[4]["reward_extra_info"]["answer"] == 1.0  # right answer, one untagged turn on the way
    tagged = r[0]["reward_score"]
    assert r[0]["reward_extra_info"]["format"] == 1.0
    for other in r[1:]:
        assert other["reward_score"] < tagged
        assert other["reward_extra_info"]["format"] < 1.0
