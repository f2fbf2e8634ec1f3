"""Parts of the synthesis package: wrong-call proposals, the journal, text helpers, chat wire format, CLI options."""

from __future__ import annotations

import argparse
import json
import random

import pytest

from verl_toolmaster.synth import templates as tpl
from verl_toolmaster.synth.journal import Journal, JournalError
from verl_toolmaster.synth.llm import wire_messages, wire_tools
from verl_toolmaster.synth.probes import EXTRA, MISSING, RENAMED, WRONG_TYPE, probe_candidates, wrong_names
from verl_toolmaster.synth.scripted import precheck

SCHEMA = {
    "type": "object",
    "properties": {"city_name": {"type": "string"}, "days": {"type": "integer"}, "units": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city_name", "days"],
}
ARGS = {"city_name": "Oslo", "days": 3, "units": "c"}


def _json_type(v):
    return type(v).__name__


def test_probe_candidates_are_wrong_in_the_stated_way():
    probes = probe_candidates(ARGS, SCHEMA, random.Random(0))
    kinds = {p.kind for p in probes}
    assert kinds == {MISSING, RENAMED, WRONG_TYPE, EXTRA}
    for p in probes:
        assert p.arguments != ARGS
        if p.kind == MISSING:
            assert p.param in SCHEMA["required"] and p.arguments == {k: v for k, v in ARGS.items() if k != p.param}
        elif p.kind == RENAMED:
            wrong = p.detail["wrong"]
            assert wrong not in SCHEMA["properties"] and p.arguments[wrong] == ARGS[p.param] and p.param not in p.arguments
        elif p.kind == WRONG_TYPE:
            assert set(p.arguments) == set(ARGS) and _json_type(p.arguments[p.param]) != _json_type(ARGS[p.param])
        else:
            assert set(p.arguments) - set(ARGS) == {p.param} and p.param not in SCHEMA["properties"]
    assert probes[-1].kind == EXTRA  # the last resort comes last


def test_probe_order_is_seeded():
    orders = [[(p.kind, p.param) for p in probe_candidates(ARGS, SCHEMA, random.Random(s))] for s in range(6)]
    assert orders[0] == [(p.kind, p.param) for p in probe_candidates(ARGS, SCHEMA, random.Random(0))]
    assert len({tuple(o) for o in orders}) > 1
    assert len({o[0][0] for o in orders}) > 1  # the first kind tried varies


def test_probes_for_a_tool_without_parameters_add_an_option():
    probes = probe_candidates({}, {"type": "object", "properties": {}}, random.Random(0))
    assert probes and all(p.kind == EXTRA and len(p.arguments) == 1 for p in probes)


def test_wrong_names():
    assert wrong_names("city_name") == ["cityName", "city"]
    assert wrong_names("folder") == ["folder_name"]


def test_journal_repairs_a_torn_tail_and_rejects_corruption(tmp_path):
    j = Journal(tmp_path / "j.jsonl")
    j.append({"id": "a", "status": "kept", "row": {"x": 1}})
    j.append({"id": "b", "status": "dropped", "reason": "no_trial"})
    j.append({"id": "a", "status": "dropped", "reason": "later duplicate"})
    good = j.path.read_bytes()
    with open(j.path, "ab") as f:
        f.write(b'{"id": "c", "sta')
    entries = Journal(j.path).load()
    assert set(entries) == {"a", "b"} and entries["a"]["status"] == "kept"  # the first entry of an id wins
    assert j.path.read_bytes() == good  # the torn line is gone, nothing else changed
    with pytest.raises(ValueError, match="status"):
        j.append({"id": "d", "status": "failed"})
    j.path.write_bytes(good.replace(b'"b"', b'"b', 1))
    with pytest.raises(JournalError, match="line 2"):
        Journal(j.path).load()


def test_excerpt_is_one_clean_line():
    text = "Error: invalid arguments for 'f':\n- parameter 'x' must be <int>\n- missing required parameter 'y'"
    out = tpl.excerpt(text, 200)
    assert out == "invalid arguments for 'f': parameter 'x' must be int missing required parameter 'y'"
    assert len(tpl.excerpt("word " * 100, 50)) <= 50 and tpl.excerpt("word " * 100, 50).endswith("...")


def test_templates_fill_every_slot():
    rng = random.Random(0)
    slots = dict(
        tool="t",
        given="x=1",
        param="p",
        wrong="w",
        label="p",
        shown_value="'1'",
        error="e",
        fix="f",
        call="t(x=1)",
        prev_tool="s",
        obs='"o"',
        calls="t(x=1)",
        expected_phrase="an integer",
    )
    for key, texts in tpl.TEMPLATES.items():
        for _ in range(3 * len(texts)):
            text = tpl.pick(rng, key, **slots)
            assert "{" not in text and "<" not in text, (key, text)


def test_wire_messages_keep_the_model_text():
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "q"},
        {
            "role": "assistant",
            "content": "<trial>probe</trial>",
            "tool_calls": [
                {"type": "function", "function": {"name": "f", "arguments": {"a": 1}}},
                {"type": "function", "function": {"name": "g", "arguments": {}}},
            ],
        },
        {"role": "tool", "content": "r1", "name": "f"},
        {"role": "tool", "content": "r2", "name": "g"},
        {"role": "user", "content": "Trial budget spent."},
    ]
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}, "response": {"x": 1}}}]
    wire = wire_messages(messages, tools)
    assert [m["role"] for m in wire] == ["system", "user", "assistant", "user", "user"]
    assert (
        wire[2]["content"]
        == '<trial>probe</trial>\n<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>\n<tool_call>\n{"name": "g", "arguments": {}}\n</tool_call>'
    )
    assert wire[3]["content"] == "<tool_response>\nr1\n</tool_response>\n<tool_response>\nr2\n</tool_response>"
    assert wire[0]["content"].startswith("sys") and '"name": "f"' in wire[0]["content"] and "response" not in wire[0]["content"]
    assert wire_tools(tools) == [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]


def test_precheck_reasons():
    def row(gold, env=None, follow_up=()):
        return {
            "extra_info": {
                "env": json.dumps(env or {"kind": "schema", "tools": []}),
                "gold": json.dumps(gold),
                "follow_up": json.dumps(list(follow_up)),
            }
        }

    call = {"name": "f", "arguments": {}}
    assert precheck(row(None)) == "no_gold_trace"
    assert precheck(row([[]])) == "no_gold_calls"
    assert precheck(row([[[call]], [[call]]])) == "bad_gold_trace"
    assert precheck(row([[[call]]], env={"kind": "schema", "tools": [], "perturb": {"seed": 1}})) == "perturbed"
    assert precheck(row([[[call]]])) is None


def test_every_cli_option_is_documented():
    from verl_toolmaster.synth.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert set(sub.choices) == {"scripted", "llm"}
    for name, p in sub.choices.items():
        for action in p._actions:
            if action.option_strings and action.dest != "help":
                assert action.help and len(action.help) > 10, f"{name} {action.option_strings} has no help"


def test_cli_bad_input_exits_2(tmp_path, capsys):
    from verl_toolmaster.synth.cli import main

    assert main(["scripted", "--data", str(tmp_path / "missing.parquet"), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "missing.parquet: no such file" in capsys.readouterr().err
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    assert main(["scripted", "--data", str(bad), "--out", str(tmp_path / "o.parquet")]) == 2
    assert "bad.parquet: not a readable parquet file" in capsys.readouterr().err
    assert main(["llm", "--data", str(bad), "--out", str(tmp_path / "o.parquet"), "--concurrency", "0"]) == 2
    assert "--concurrency must be >= 1" in capsys.readouterr().err
