"""The oracle's pieces: fitting a gold trace to the loop's budgets, mapping gold calls onto perturbed tools,
binding call strings, and the text it emits."""

from __future__ import annotations

import asyncio
import json

import pytest

from verl_toolmaster.agent_config import ToolMasterLoopConfig
from verl_toolmaster.eval.gold import GoldError, SurfaceView, gold_answers, plan, reply_text
from verl_toolmaster.eval.rows import Row
from verl_toolmaster.protocol import parse_turn


def calls(*names):
    return [{"name": n, "arguments": {"i": k}} for k, n in enumerate(names)]


def phases(turns):
    return [(t.phase, len(t.calls)) for t in turns]


def test_one_reply_per_step_with_a_probe_per_user_turn():
    gold = [[calls("a"), calls("b", "c")], [], [calls("d")]]
    turns, notes = plan(gold, ["x", "y", "z"], ToolMasterLoopConfig())
    assert phases(turns) == [("trial", 1), ("execute", 1), ("execute", 2), ("answer", 0), ("answer", 0), ("trial", 1), ("execute", 1), ("answer", 0)]
    assert turns[0].calls == turns[1].calls  # the probe is the turn's first gold call
    assert [t.body for t in turns if t.phase == "answer"] == ["x", "y", "z"] and notes == {}


def test_steps_larger_than_the_call_budget_are_split():
    turns, _ = plan([[calls("a", "b", "c", "d", "e")]], ["ok"], ToolMasterLoopConfig(max_calls_per_turn=2))
    assert phases(turns) == [("trial", 1), ("execute", 2), ("execute", 2), ("execute", 1), ("answer", 0)]


def test_over_the_turn_budget_steps_are_packed_then_probes_dropped():
    gold = [[calls("a"), calls("b"), calls("c")] for _ in range(3)]  # 3 user turns x (probe + 3 + answer) = 15
    turns, notes = plan(gold, ["1", "2", "3"], ToolMasterLoopConfig(max_turns=8))
    assert notes == {"packed_steps": True, "dropped_probes": 1}
    assert phases(turns) == [("trial", 1), ("execute", 3), ("answer", 0), ("trial", 1), ("execute", 3), ("answer", 0), ("execute", 3), ("answer", 0)]
    assert [c["name"] for c in turns[1].calls] == ["a", "b", "c"]  # gold order kept


def test_parallel_loops_never_get_packed_replies_and_unfit_plans_say_so():
    gold = [[calls("a"), calls("b"), calls("c")]]
    turns, notes = plan(gold, ["1"], ToolMasterLoopConfig(max_turns=3, max_parallel_calls=2))
    assert phases(turns) == [("execute", 1), ("execute", 1), ("execute", 1), ("answer", 0)]
    assert notes == {"dropped_probes": 1, "over_budget": True}


def test_trial_mode_off_plans_no_probes_and_writes_bare_calls():
    cfg = ToolMasterLoopConfig(trial_mode="off")
    turns, _ = plan([[calls("a")]], ["42"], cfg)
    assert phases(turns) == [("execute", 1), ("answer", 0)]
    text = reply_text(turns[0], "off")
    assert text.startswith("<tool_call>") and "<execute>" not in text
    parsed = parse_turn(text + "<|im_end|>", trial_mode="off")
    assert parsed.phase == "execute" and parsed.calls[0].arguments == {"i": 0}
    assert parse_turn(reply_text(turns[1], "off"), trial_mode="off").answer == "42"


def test_emitted_text_parses_back_to_the_planned_turn():
    turns, _ = plan([[calls("a", "b")]], ['the "answer" <b>'], ToolMasterLoopConfig())
    for t in turns:
        parsed = parse_turn(reply_text(t, "on") + "<|im_end|>", tool_names={"a", "b"})
        assert parsed.violation is None and parsed.phase == t.phase and parsed.stopped
        assert [(c.name, c.arguments) for c in parsed.calls] == [(c["name"], c["arguments"]) for c in t.calls]
    assert parse_turn(reply_text(turns[-1], "on")).answer == 'the "answer" <b>'


SCHEMA = {
    "kind": "schema",
    "tools": [
        {"type": "function", "function": {"name": "scale", "description": "Scale a number.", "parameters": {
            "type": "object", "properties": {"value": {"type": "integer"}, "factor": {"type": "integer"}}, "required": ["value"]}}},
        {"type": "function", "function": {"name": "echo", "description": "Echo text.", "parameters": {
            "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]}}},
    ],
}


def view(spec, turns=1):
    v = SurfaceView(spec, turns, "row-1")
    return v


def test_surface_view_maps_gold_calls_onto_perturbed_names_and_back():
    spec = {**SCHEMA, "perturb": {"seed": 3, "rename_tools": True, "rename_params": True, "distractors": 2}}
    v = view(spec)
    try:
        surface = v.call(0, {"name": "scale", "arguments": {"value": 4, "factor": 2}})
        assert surface["name"] != "scale" and set(surface["arguments"]) .isdisjoint({"value", "factor"})
        assert v.env.canonical(surface["name"], surface["arguments"]) == ("scale", {"value": 4, "factor": 2})
        visible = {t["function"]["name"] for t in v.env.tools()}
        assert surface["name"] in visible and len(visible) == 4  # 2 real + 2 distractors
        # call strings bind positional arguments onto the tool's parameters, then map like dicts
        assert v.call(0, "scale(4, factor=2)") == surface
    finally:
        asyncio.run(v.close())


def test_surface_view_rejects_gold_that_the_environment_cannot_take():
    v = view(SCHEMA)
    try:
        assert v.call(0, "echo('hi')") == {"name": "echo", "arguments": {"text": "hi"}}
        with pytest.raises(GoldError, match="no such tool"):
            v.call(0, {"name": "missing", "arguments": {}})
        with pytest.raises(GoldError, match="positional"):
            v.call(0, "echo('a', 'b')")
        with pytest.raises(GoldError, match="not valid Python"):
            v.call(0, "echo(")
        with pytest.raises(GoldError, match="neither"):
            v.call(0, ["echo"])
    finally:
        asyncio.run(v.close())


def row(extra, gt=None):
    kwargs = {"raw_prompt": [{"role": "user", "content": "q"}], "extra_info": extra, "reward_model": {"ground_truth": json.dumps(gt or {})}}
    return Row(id="r", source="s", split="all", level="none", kwargs=kwargs)


def test_gold_answers_come_from_gold_answers_then_the_ground_truth():
    assert gold_answers(row({"gold_answers": json.dumps(["15"])}), 1) == ["15"]
    assert gold_answers(row({"gold_answers": "null"}, {"answer": "7"}), 1) == ["7"]
    assert gold_answers(row({"gold_answers": "null"}, {"calls": [], "response": "Sure."}), 2) == ["Done.", "Sure."]
    assert gold_answers(row({}, {"category": "multi_turn_base"}), 3) == ["Done."] * 3
