"""Each violation kind, each tool failure and each budget through the real worker: observation + metric, no raise."""

from __future__ import annotations

import pytest
from loop_harness import EOS, CounterEnv, T, assert_token_invariants, make_config, row, run_rows

from verl_toolmaster.agent_config import ToolMasterLoopConfig, load_config
from verl_toolmaster.protocol import tool_call_text

SPEC = {"kind": "tm_test_counter"}
INCR = tool_call_text("incr", {"by": 1})
ANSWER = T("answer", "done")


def _one(base_config, script, *, custom=None, multi_turn=None, spec=SPEC, response_length=None):
    cfg = make_config(base_config, custom=custom, multi_turn=multi_turn, response_length=response_length)
    run = run_rows(cfg, [row("s", spec)], {"s": script})
    assert_token_invariants(run, 0, "s")
    return run, run.info()


@pytest.mark.parametrize(
    "bad, kind, label",
    [
        ("I just answer: 3" + EOS, "no_tag", "untagged"),
        (f"<trial>a</trial><execute>b</execute>\n{INCR}" + EOS, "multiple_tags", "untagged"),
        (f"<trial>never closed\n{INCR}" + EOS, "unclosed_tag", "untagged"),
        (f"Let me think. <trial>a</trial>\n{INCR}" + EOS, "misplaced_tag", "untagged"),
        (f"<answer>3</answer>\n{INCR}" + EOS, "calls_in_answer", "answer"),
        ("<trial>no call</trial>" + EOS, "no_calls_in_trial", "trial"),
        ("<execute>no call</execute>" + EOS, "no_calls_in_execute", "execute"),
    ],
)
def test_turn_violation_voids_the_turn(base_config, bad, kind, label):
    run, info = _one(base_config, [bad, ANSWER])
    assert info["counts"]["violations"] == {kind: 1}
    assert info["turns"][0]["violation"] == kind and info["turns"][0]["phase"] == (None if label == "untagged" else label)
    assert info["calls"] == [] and CounterEnv.created[0].calls == []  # nothing of the turn ran
    assert info["phase_spans"][0][0] == label
    assert info["termination"] == "answered" and info["answers"] == ["done"]
    second_prompt = run.server.prompts["s"][1]
    assert f"Protocol error ({kind})" in second_prompt
    if "<tool_call>" in bad:
        assert "Not run: the reply broke the protocol" in second_prompt and second_prompt.count("<tool_response>") == 1


def test_trial_after_execute_and_retrial_switch(base_config):
    script = [T("execute", "go", ("incr", {"by": 2})), T("trial", "late probe", ("incr", {"by": 1})), ANSWER]
    _, info = _one(base_config, script)
    assert info["counts"]["violations"] == {"trial_after_execute": 1}
    assert [c["phase"] for c in info["calls"]] == ["execute"]
    _, info = _one(base_config, script, custom={"allow_retrial": True})
    assert info["counts"]["violations"] == {}
    assert [(c["phase"], c["text"]) for c in info["calls"]] == [("execute", "2"), ("trial", "3")]  # fork of the real state
    assert CounterEnv.created[0].value == 2


def test_trial_budget(base_config):
    script = [T("trial", "a", ("incr", {"by": 1})), T("trial", "b", ("incr", {"by": 1})), T("execute", "c", ("get", {})), ANSWER]
    run, info = _one(base_config, script, custom={"max_trial_turns": 1})
    assert "Trial budget spent (1 trial replies)" in run.server.prompts["s"][1]
    assert info["counts"]["violations"] == {"trial_budget": 1}
    assert [c["phase"] for c in info["calls"]] == ["trial", "execute"]
    assert info["termination"] == "answered"


def test_execute_budget(base_config):
    script = [T("execute", "a", ("incr", {"by": 1})), T("execute", "b", ("incr", {"by": 1})), ANSWER]
    run, info = _one(base_config, script, custom={"max_execute_turns": 1})
    assert "Execution budget spent (1 execute replies)" in run.server.prompts["s"][1]
    assert info["counts"]["violations"] == {"execute_budget": 1} and CounterEnv.created[0].value == 1


def test_call_level_violations_keep_the_valid_calls(base_config):
    turn = ("<execute>mixed</execute>\n<tool_call>{not json</tool_call>\n"
            + tool_call_text("nope", {}) + "\n" + INCR + EOS)
    run, info = _one(base_config, [turn, ANSWER])
    assert info["counts"]["violations"] == {"bad_json": 1, "unknown_tool": 1}
    assert [(c["name"], c["ok"], c["error_kind"]) for c in info["calls"]] == [
        ("", False, "bad_arguments"), ("nope", False, "unknown_tool"), ("incr", True, None)]
    assert info["calls"][0]["arguments"] == "{not json"
    assert info["turns"][0]["violation"] == "bad_json" and info["turns"][0]["violations"] == ["bad_json", "unknown_tool"]
    assert info["counts"]["tool_errors"] == 2 and CounterEnv.created[0].value == 1
    prompt = run.server.prompts["s"][1]
    assert "not valid JSON" in prompt and "unknown tool 'nope'" in prompt and "Available tools: big, boom" in prompt


def test_too_many_calls(base_config):
    turn = T("execute", "three", ("incr", {"by": 1}), ("incr", {"by": 1}), ("incr", {"by": 1}))
    run, info = _one(base_config, [turn, ANSWER], custom={"max_calls_per_turn": 2})
    assert info["counts"]["violations"] == {"too_many_calls": 1}
    assert len(info["calls"]) == 2 and CounterEnv.created[0].value == 2
    assert run.server.prompts["s"][1].count("<tool_response>") == 3  # two results, then one note for the excess
    assert "Not run: at most 2 tool calls per reply; the other 1 call(s) did not run." in run.server.prompts["s"][1]


def test_tool_failures_become_observations(base_config):
    turn = T("execute", "break things", ("fail", {}), ("boom", {}), ("slow", {"s": 5}), ("big", {"n": 5000}), ("incr", {"by": "x"}))
    fixed = T("execute", "fix the call", ("incr", {"by": 1}))
    run, info = _one(base_config, [turn, fixed, ANSWER], custom={"tool_timeout_s": 0.3})
    kinds = [(c["name"], c["ok"], c["error_kind"]) for c in info["calls"]]
    assert kinds == [("fail", False, "exception"), ("boom", False, "exception"), ("slow", False, "timeout"),
                     ("big", True, None), ("incr", False, "schema"), ("incr", True, None)]
    assert "RuntimeError: boom raised inside the environment" in info["calls"][1]["text"]
    assert "timed out after 0.3 s" in info["calls"][2]["text"]
    big = info["calls"][3]["text"]
    assert len(big) < 600 and "...(truncated)..." in big  # multi_turn.max_tool_response_length=512
    c = info["counts"]
    assert (c["tool_errors"], c["truncated_outputs"], c["self_corrections"]) == (4, 1, 1)
    assert c["violations"] == {} and info["termination"] == "answered"


def test_canonical_names_are_logged(base_config):
    spec = {"kind": "tm_test_counter", "rename": {"plus": "incr"}}
    _, info = _one(base_config, [T("execute", "x", ("plus", {"by": 3})), ANSWER], spec=spec)
    (call,) = info["calls"]
    assert (call["name"], call["called_name"], call["ok"], call["text"]) == ("incr", "plus", True, "3")


def test_response_budget(base_config):
    long_turn = T("execute", "blah " * 200, ("incr", {"by": 1}))
    run, info = _one(base_config, [long_turn, ANSWER], response_length=120)
    assert info["termination"] == "response_budget"
    assert info["counts"]["violations"] == {"answer_missing": 1}
    assert info["calls"] == []  # a turn cut by the budget runs nothing
    assert len(run.response()[1]) == 120
    assert run.server.params["s"][0]["max_tokens"] == 120


def test_budget_spent_by_observation(base_config):
    run, info = _one(base_config, [T("execute", "x", ("big", {"n": 3000})), ANSWER],
                     response_length=200, multi_turn={"max_tool_response_length": 2000})
    assert info["termination"] == "response_budget" and len(info["calls"]) == 1
    assert info["phase_spans"][-1][0] == "execute"  # the observation did not fit and was not appended


def test_turn_budget(base_config):
    script = [T("trial", str(i), ("get", {})) for i in range(10)]
    _, info = _one(base_config, script, custom={"max_turns": 3, "max_trial_turns": 10})
    assert info["termination"] == "turn_budget" and len(info["turns"]) == 3
    assert info["counts"]["violations"] == {"answer_missing": 1}


def test_no_tag_stop(base_config):
    _, info = _one(base_config, ["plain chat" + EOS, ANSWER], custom={"no_tag_action": "stop"})
    assert info["termination"] == "no_tag_stop"
    assert info["counts"]["violations"] == {"no_tag": 1, "answer_missing": 1}


def test_max_violations(base_config):
    _, info = _one(base_config, ["a" + EOS, "b" + EOS, "c" + EOS, ANSWER], custom={"max_violations": 2})
    assert info["termination"] == "max_violations" and len(info["turns"]) == 2
    assert info["counts"]["violations"] == {"no_tag": 2, "answer_missing": 1}


def test_bad_rows_raise_naming_the_row(base_config):
    cfg = make_config(base_config)
    bad = row("s", SPEC, index=7)
    bad["extra_info"] = {"index": 7}
    with pytest.raises(ValueError, match="row 7: extra_info has no 'env'"):
        run_rows(cfg, [bad], {"s": [ANSWER]})
    bad = row("s", {"kind": "no_such_kind"}, index=8)
    with pytest.raises(ValueError, match="row 8: unknown environment kind 'no_such_kind'"):
        run_rows(cfg, [bad], {"s": [ANSWER]})
    bad = row("s", SPEC, index=9)
    bad["extra_info"]["follow_up"] = '{"not": "a list"}'
    with pytest.raises(ValueError, match=r"row 9: extra_info\['follow_up'\] must be a JSON list"):
        run_rows(cfg, [bad], {"s": [ANSWER]})


def test_config_sources_and_validation(base_config):
    rollout = make_config(base_config, multi_turn={"max_parallel_calls": 3, "max_assistant_turns": 5},
                          custom={"max_trial_turns": 2}).actor_rollout_ref.rollout
    cfg = load_config(rollout, {"max_trial_turns": 1, "trial_mode": "off"})
    assert (cfg.max_parallel_calls, cfg.max_turns, cfg.max_trial_turns, cfg.trial_mode) == (3, 5, 2, "off")
    assert load_config(make_config(base_config).actor_rollout_ref.rollout) == ToolMasterLoopConfig(max_tool_response_length=512)
    with pytest.raises(ValueError, match=r"custom.toolmaster: unknown key\(s\) \['max_trails'\]"):
        load_config(make_config(base_config, custom={"max_trails": 1}).actor_rollout_ref.rollout)
    with pytest.raises(ValueError, match="trial_mode='sometimes'"):
        load_config(rollout, {"trial_mode": "sometimes"})
    with pytest.raises(ValueError, match="multi_turn.format='gpt-oss'"):
        load_config(make_config(base_config, multi_turn={"format": "gpt-oss"}).actor_rollout_ref.rollout)
    with pytest.raises(ValueError, match="max_calls_per_turn=0"):
        ToolMasterLoopConfig(max_calls_per_turn=0)


def test_empty_generations_keep_the_batch_aligned(base_config):
    """A trajectory that samples nothing still carries logprobs, so verl can stack it with the others."""
    scripts = {"ok": [T("execute", "x", ("get", {})), ANSWER], "empty": [[], "", []]}
    cfg = make_config(base_config, custom={"max_turns": 3})
    run = run_rows(cfg, [row("ok", SPEC, index=0), row("empty", SPEC, index=1)], scripts)
    assert "rollout_log_probs" in run.out.batch.keys()
    info = run.info(1)
    assert info["termination"] == "turn_budget" and info["counts"]["violations"] == {"no_tag": 3, "answer_missing": 1}
    assert set(run.response(1)[1]) == {0}  # only feedback context, nothing sampled
    assert_token_invariants(run, 1, "empty")


def test_answer_that_ends_exactly_at_the_budget_counts(base_config):
    script = [T("execute", "x", ("get", {})), T("answer", "0")]
    run, _ = _one(base_config, script)
    n = len(run.response()[1])
    _, info = _one(base_config, script, response_length=n)
    assert (info["termination"], info["answers"], info["counts"]["violations"]) == ("answered", ["0"], {})
    _, info = _one(base_config, script, response_length=n - 1)  # the answer's <|im_end|> is cut off
    assert (info["termination"], info["answers"]) == ("response_budget", [None])
    assert info["counts"]["violations"] == {"answer_missing": 1}


def test_trials_when_the_environment_cannot_be_forked(base_config):
    spec = {"kind": "tm_test_counter", "fork_fails": True}
    script = [T("trial", "probe", ("incr", {"by": 9})), T("execute", "real", ("incr", {"by": 1})), ANSWER]
    _, info = _one(base_config, script, spec=spec)
    assert [(c["phase"], c["ok"], c["error_kind"]) for c in info["calls"]] == [("trial", False, "exception"), ("execute", True, None)]
    assert "could not be copied" in info["calls"][0]["text"]
    assert CounterEnv.created[0].value == 1  # the trial never touched the real environment
    assert info["termination"] == "answered"
