"""The teacher-played SFT flavours through the real agent loop: trial (probe, fix, answer) and selfcorrect
(documented execution, the real error, the correction, answer; no trial)."""

from __future__ import annotations

import asyncio
import io

import pytest

from verl_toolmaster.data.task import rl_row
from verl_toolmaster.toyworld import generate as gen
from verl_toolmaster.toyworld import teachers
from verl_toolmaster.toyworld import world as tw


def _picked(tasks):
    """Two train tasks per level (the level-3 ones with several tools)."""
    train = tasks["train"]
    picked = [t for t in train if t.tags["level"] == 1][:2] + [t for t in train if t.tags["level"] == 2][:2]
    picked += [t for t in train if t.tags["level"] == 3 and len(t.env["tools"]) > 1][:2]
    assert len(picked) == 6
    return picked


def _synthesize(flavour, picked):
    rows = [rl_row(t, i, tw.system_text(teachers.TRIAL_MODE[flavour])) for i, t in enumerate(picked)]
    sft, dropped = asyncio.run(teachers.synthesize(flavour, rows, concurrency=2, progress=False, err=io.StringIO()))
    assert dropped == {} and len(sft) == len(picked)
    return sft


def test_probe_teacher_trajectories_run_through_the_real_loop(tasks):
    """Trial flavour: the documented call as a probe (a real failure from level 2 on), the fixed call, the answer."""
    picked = _picked(tasks)
    for t, row in zip(picked, _synthesize("trial", picked)):
        msgs = row["messages"]
        assistant = [m for m in msgs if m["role"] == "assistant"]
        n = len(t.env["tools"])
        assert [m["content"].split(">", 1)[0] + ">" for m in assistant] == ["<trial>"] * n + ["<execute>", "<answer>"]
        probe_results = [m["content"] for m in msgs if m["role"] == "tool"][:n]
        gold = t.gold[0][0][0]
        assert assistant[n]["tool_calls"][0]["function"] == {"name": gold["name"], "arguments": gold["arguments"]}
        assert assistant[n + 1]["content"] == f"<answer>{t.gold_answers[0]}</answer>"
        if t.tags["level"] >= 2:
            assert all(r.startswith("Error: ") and "Usage: " in r for r in probe_results), probe_results  # the failed probe, as the env said it
        else:
            assert probe_results == [msgs[-2]["content"]]  # the documented call already worked


def _without_tool_names(messages):
    return [{k: v for k, v in m.items() if not (m["role"] == "tool" and k == "name")} for m in messages]


def test_selfcorrect_teacher_executes_as_documented_then_corrects_from_the_error(tasks, tiny_tokenizer):
    picked = _picked(tasks)
    direct = gen.direct_sft_rows(picked)
    for t, row, plain in zip(picked, _synthesize("selfcorrect", picked), direct):
        msgs = row["messages"]
        text = "".join(m.get("content") or "" for m in msgs)
        assert "<trial>" not in text and "<execute>" not in text and msgs[0]["content"] == tw.system_text("off")
        calls = [m["tool_calls"][0]["function"] for m in msgs if m["role"] == "assistant" and m.get("tool_calls")]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        gold = t.gold[0][0][0]
        assert calls[-1] == {"name": gold["name"], "arguments": gold["arguments"]} and not results[-1].startswith("Error")
        assert msgs[-1] == {"role": "assistant", "content": f"<answer>{t.gold_answers[0]}</answer>"}
        if t.tags["level"] == 1:
            # nothing fails: the self-correcting trajectory is the direct one, token for token
            assert _without_tool_names(msgs) == plain["messages"]
            render = lambda m: tiny_tokenizer.apply_chat_template(m, tools=row["tools"], tokenize=False)  # noqa: E731
            assert render(msgs) == render(plain["messages"])
            continue
        # every call but the last is written from the schema and fails with the real usage line
        documented = [dict(zip(next(s for s in t.env["tools"] if s["function"]["name"] == c["name"])["function"]["parameters"]["required"],
                               gold["arguments"].values())) for c in calls[:-1]]
        assert [c["arguments"] for c in calls[:-1]] == documented
        assert all(r.startswith("Error: ") and "Usage: " in r for r in results[:-1]), results
        assert calls[-2]["name"] == gold["name"]  # the correction fixes the call that failed
        tools = [s["function"]["name"] for s in t.env["tools"]]
        assert [c["name"] for c in calls[:-1]] == tools[: tools.index(gold["name"]) + 1]  # tools in order, up to the right one


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="flavour must be one of"):
        asyncio.run(teachers.synthesize("direct", [], 1, False, io.StringIO()))
