"""Turn parsing: every violation kind, trial_mode off, rendering round trips."""

from __future__ import annotations

import json

import pytest

from verl_toolmaster.protocol import (
    TURN_VIOLATIONS,
    VIOLATION_KINDS,
    assistant_message,
    message_from_parsed,
    parse_turn,
    system_prompt,
    tool_call_text,
    turn_text,
)

TOOLS = ["add", "lookup"]
ADD = tool_call_text("add", {"a": 1, "b": 2})
LOOKUP = tool_call_text("lookup", {"q": "x"})


def test_valid_trial_execute_answer():
    t = parse_turn(f"<trial>probe add</trial>\n{ADD}<|im_end|>", tool_names=TOOLS)
    assert (t.phase, t.body, t.violation, t.stopped) == ("trial", "probe add", None, True)
    assert [(c.name, c.arguments, c.ok) for c in t.calls] == [("add", {"a": 1, "b": 2}, True)]
    e = parse_turn(f"<execute>plan</execute>\n{ADD}\n{LOOKUP}", tool_names=TOOLS)
    assert e.phase == "execute" and [c.name for c in e.valid_calls] == ["add", "lookup"] and not e.stopped
    a = parse_turn("  <answer> 3 </answer><|im_end|>ignored <trial>", tool_names=TOOLS)
    assert (a.phase, a.answer, a.violations) == ("answer", "3", [])


@pytest.mark.parametrize(
    "text, kind",
    [
        ("just text", "no_tag"),
        ("", "no_tag"),
        (f"<trial>a</trial><execute>b</execute>\n{ADD}", "multiple_tags"),
        (f"<trial>a <trial>b</trial>\n{ADD}", "multiple_tags"),
        (f"<trial>a\n{ADD}", "unclosed_tag"),
        (f"a</trial>\n{ADD}", "unclosed_tag"),
        (f"<trial>a</execute>\n{ADD}", "unclosed_tag"),
        (f"</trial>a<trial>\n{ADD}", "unclosed_tag"),
        ('<execute>a</execute>\n<tool_call>\n{"name": "add"', "unclosed_tag"),
        ("<execute>a</execute>\n</tool_call>", "unclosed_tag"),
        (f"hello <trial>a</trial>\n{ADD}", "misplaced_tag"),
        (f"{ADD}\n<trial>a</trial>", "misplaced_tag"),
        (f"<trial>a {ADD} b</trial>", "misplaced_tag"),
        (f"<answer>3</answer>\n{ADD}", "calls_in_answer"),
        ("<trial>nothing to call</trial>", "no_calls_in_trial"),
        ("<execute>nothing to call</execute>", "no_calls_in_execute"),
    ],
)
def test_turn_level_violations(text, kind):
    t = parse_turn(text, tool_names=TOOLS)
    assert t.violation == kind, (text, t)
    assert t.error and t.answer is None
    assert kind in TURN_VIOLATIONS


def test_structural_violation_leaves_phase_unknown_but_semantic_keeps_it():
    assert parse_turn("no tag").span_label == "untagged"
    assert parse_turn("<trial>x</trial>").span_label == "trial"  # no_calls_in_trial: the tag itself was valid


@pytest.mark.parametrize(
    "body, kind, name",
    [
        ("{not json", "bad_json", ""),
        ('["add", {}]', "bad_json", ""),
        ('{"arguments": {}}', "bad_json", ""),
        ('{"name": "add", "arguments": [1, 2]}', "bad_json", "add"),
        ('{"name": "add", "arguments": "not an object"}', "bad_json", "add"),
        ('{"name": "nope", "arguments": {}}', "unknown_tool", "nope"),
    ],
)
def test_call_level_violations(body, kind, name):
    t = parse_turn(f"<execute>x</execute>\n<tool_call>{body}</tool_call>\n{ADD}", tool_names=TOOLS)
    assert t.violation is None and t.phase == "execute"
    bad, good = t.calls
    assert (bad.violation, bad.name) == (kind, name) and bad.error
    assert good.ok and t.violations == [kind]


def test_lenient_call_shapes():
    t = parse_turn('<execute>x</execute><tool_call>{"name": "add"}</tool_call>'
                   '<tool_call>{"name": "add", "arguments": "{\\"a\\": 1}"}</tool_call>', tool_names=TOOLS)
    assert [c.arguments for c in t.calls] == [{}, {"a": 1}] and t.violations == []


def test_too_many_calls_marks_only_the_excess():
    t = parse_turn("<execute>x</execute>" + "\n".join([ADD] * 5), tool_names=TOOLS, max_calls=3)
    assert [c.violation for c in t.calls] == [None, None, None, "too_many_calls", "too_many_calls"]


def test_unknown_tool_lists_available_names_capped():
    names = [f"tool_{i:03d}" for i in range(100)]
    t = parse_turn('<execute>x</execute><tool_call>{"name": "zzz", "arguments": {}}</tool_call>', tool_names=names)
    assert "tool_000" in t.calls[0].error and "and 70 more" in t.calls[0].error


def test_think_prefix_and_stop_string():
    t = parse_turn(f"<think>hmm <answer></think>\n<trial>p</trial>\n{ADD}<|endoftext|>garbage", tool_names=TOOLS)
    assert (t.phase, t.thinking, t.stopped) == ("trial", "hmm <answer>", True)


def test_trial_mode_off_infers_phase():
    e = parse_turn(f"I will add.\n{ADD}", trial_mode="off", tool_names=TOOLS)
    assert (e.phase, e.violation, len(e.valid_calls)) == ("execute", None, 1)
    a = parse_turn("The result is <answer>3</answer>", trial_mode="off")
    assert a.answer == "3"
    plain = parse_turn("It is 3.", trial_mode="off")
    assert (plain.answer, plain.violations) == ("It is 3.", [])
    assert parse_turn("<execute>x", trial_mode="off").phase == "answer"  # tags are not enforced when off
    with pytest.raises(ValueError, match="trial_mode"):
        parse_turn("x", trial_mode="maybe")


def test_render_round_trip():
    calls = [{"name": "add", "arguments": {"a": 1, "b": "é"}}, {"name": "lookup", "arguments": {}}]
    text = turn_text("execute", "plan", calls)
    t = parse_turn(text, tool_names=TOOLS)
    assert t.violations == [] and [(c.name, c.arguments) for c in t.calls] == [(c["name"], c["arguments"]) for c in calls]
    assert message_from_parsed(t) == assistant_message("execute", "plan", calls)
    assert '"b": "é"' in text  # ensure_ascii=False, like the chat template's tojson
    answer = turn_text("answer", "3")
    assert message_from_parsed(parse_turn(answer)) == {"role": "assistant", "content": "<answer>3</answer>"}
    with pytest.raises(ValueError, match="phase"):
        turn_text("plan", "x")


def test_message_from_invalid_turn_keeps_raw_arguments():
    t = parse_turn("<execute>x</execute>\n<tool_call>{bad</tool_call>", tool_names=TOOLS)
    msg = message_from_parsed(t)
    assert msg["tool_calls"][0]["function"] == {"name": "", "arguments": "{bad"}


def test_system_prompt():
    on, off = system_prompt("on"), system_prompt("off")
    assert "<trial>" in on and "<execute>" in on and "<answer>" in on
    assert "<trial>" not in off and "<answer>" in off
    assert system_prompt("on", text="custom") == "custom"
    with pytest.raises(ValueError, match="trial_mode"):
        system_prompt("sometimes")


def test_violation_names_match_the_contract():
    contract = {"no_tag", "multiple_tags", "unclosed_tag", "trial_after_execute", "trial_budget", "execute_budget",
                "calls_in_answer", "no_calls_in_trial", "bad_json", "unknown_tool", "too_many_calls", "answer_missing"}
    assert contract <= set(VIOLATION_KINDS)
    assert len(set(VIOLATION_KINDS)) == len(VIOLATION_KINDS)
    json.dumps(VIOLATION_KINDS)
