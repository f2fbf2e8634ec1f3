"""The teacher-played SFT flavours through the real agent loop: trial (probe, fix, answer) and selfcorrect
(documented execution, the real error, the correction, answer; no trial)."""

from __future__ import annotations

import asyncio
import io
import json

import pytest

from verl_toolmaster.data.task import rl_row
from verl_toolmaster.toyworld import generate as gen
from verl_toolmaster.toyworld import teachers
from verl_toolmaster.toyworld import world as tw


def _picked(tasks):
    """Two train tasks per level (the level-3 ones with several tools), plus, for the trial teacher, tasks it plays
    in recovery at levels 2-5."""
    train = tasks["train"]
    picked = []
    for level in tw.LEVELS:
        at = [t for t in train if t.tags["level"] == level and (level != 3 or len(t.env["tools"]) > 1)]
        picked += [t for t in at if not teachers.recovers(t.id, level)][:2] + [t for t in at if teachers.recovers(t.id, level)][:1]
    assert len(picked) >= 10 and {t.tags["level"] for t in picked} == set(tw.LEVELS)
    assert any(teachers.recovers(t.id, t.tags["level"]) for t in picked)
    return picked


def _synthesize(flavour, picked):
    rows = [rl_row(t, i, tw.system_text(teachers.TRIAL_MODE[flavour])) for i, t in enumerate(picked)]
    sft, dropped = asyncio.run(teachers.synthesize(flavour, rows, concurrency=2, progress=False, err=io.StringIO()))
    assert dropped == {} and len(sft) == len(picked)
    return sft


def _final_accounts(t, msgs):
    """The balances the trajectory's execute calls left on the real environment, replayed independently."""
    from verl_toolmaster.envs.toyworld import replay_accounts

    phase, calls = None, []
    for m in msgs:
        if m["role"] == "assistant":
            content = m.get("content") or ""
            phase = "trial" if content.startswith("<trial>") else "execute"
            calls += [{"phase": phase, "name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in m.get("tool_calls") or []]
    return replay_accounts(t.env, calls)


def _tool_of(t, name):
    return next(s for s in t.env["tools"] if s["function"]["name"] == name)["function"]


def _documented(t, name):
    gold = t.gold[0][0][0]
    return dict(zip(_tool_of(t, name)["parameters"]["required"], gold["arguments"].values()))


def test_probe_teacher_trajectories_run_through_the_real_loop(tasks):
    """Trial flavour: documented probes up to the task's tool (on the fork), the right call executed, the answer; in
    the recovery share the task's tool is executed unprobed and repaired as the self-correcting teacher does."""
    picked = _picked(tasks)
    for t, row in zip(picked, _synthesize("trial", picked)):
        msgs = row["messages"]
        assistant = [m for m in msgs if m["role"] == "assistant"]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        tags = [m["content"].split(">", 1)[0] + ">" for m in assistant]
        gold = t.gold[0][0][0]
        tools = [s["function"]["name"] for s in t.env["tools"]]
        target, level = tools.index(gold["name"]), t.tags["level"]
        assert assistant[-1]["content"] == f"<answer>{t.gold_answers[0]}</answer>"
        if "accounts" in t.ground_truth:
            assert _final_accounts(t, msgs) == t.ground_truth["accounts"]  # the probes left the real balances alone
        if teachers.recovers(t.id, level):
            assert tags[:target] == ["<trial>"] * target and tags[target] == "<execute>"
            first = assistant[target]["tool_calls"][0]["function"]
            assert first == {"name": gold["name"], "arguments": _documented(t, gold["name"])}
            assert "<trial>" not in tags[target:]
            continue
        assert tags == ["<trial>"] * (target + 1) + ["<execute>", "<answer>"]  # probes stop at the task's tool
        assert assistant[target + 1]["tool_calls"][0]["function"] == {"name": gold["name"], "arguments": gold["arguments"]}
        probe = results[target]
        if level in (2, 3):
            assert probe.startswith("Error: ") and "Usage: " in probe  # the failed probe, as the env said it
        elif level == 4:
            applied = json.loads(probe)
            assert applied["ignored"] and list(applied["applied"]) == list(gold["arguments"])  # the real names
            # the real environment's reply to the execution: the probe's deposit of 1 was made on the fork only
            assert json.loads(results[target + 1])["balance"] == int(t.gold_answers[0]) == applied["balance"] - 1 + list(gold["arguments"].values())[1]
        elif level == 5:
            moved = json.loads(probe)
            src, dst = list(gold["arguments"].values())[:2]
            assert (moved["debited"], moved["credited"]) == (dst, src)  # the documented call goes the wrong way
            done = json.loads(results[target + 1])  # on the real balances, which the probe did not move
            assert done["balances"] == {a: b for a, b in t.ground_truth["accounts"].items() if a in (src, dst)}
        else:
            assert probe == results[-1]  # the documented call already worked


def _without_tool_names(messages):
    return [{k: v for k, v in m.items() if not (m["role"] == "tool" and k == "name")} for m in messages]


def test_selfcorrect_teacher_executes_as_documented_then_repairs(tasks, tiny_tokenizer):
    picked = _picked(tasks)
    direct = gen.direct_sft_rows(picked)
    for t, row, plain in zip(picked, _synthesize("selfcorrect", picked), direct):
        msgs = row["messages"]
        text = "".join(m.get("content") or "" for m in msgs)
        assert "<trial>" not in text and "<execute>" not in text and msgs[0]["content"] == tw.system_text("off")
        calls = [m["tool_calls"][0]["function"] for m in msgs if m["role"] == "assistant" and m.get("tool_calls")]
        results = [m["content"] for m in msgs if m["role"] == "tool"]
        gold = t.gold[0][0][0]
        level = t.tags["level"]
        assert msgs[-1] == {"role": "assistant", "content": f"<answer>{t.gold_answers[0]}</answer>"}
        if level == 1:
            # nothing fails: the self-correcting trajectory is the direct one, token for token
            assert _without_tool_names(msgs) == plain["messages"]
            render = lambda m: tiny_tokenizer.apply_chat_template(m, tools=row["tools"], tokenize=False)  # noqa: E731
            assert render(msgs) == render(plain["messages"])
            continue
        tools = [s["function"]["name"] for s in t.env["tools"]]
        target = tools.index(gold["name"])
        # the tools in order up to the task's, each written from its schema
        assert calls[: target + 1] == [{"name": n, "arguments": _documented(t, n)} for n in tools[: target + 1]]
        repair = calls[target + 1 :]
        if level in (2, 3):
            assert all(r.startswith("Error: ") and "Usage: " in r for r in results[: target + 1]), results
            assert repair == [{"name": gold["name"], "arguments": gold["arguments"]}]  # the correction the usage line teaches
        elif level == 4:  # the deposit of the default stays: top up the difference
            (acct, amount) = list(gold["arguments"].items())
            assert json.loads(results[0])["applied"][amount[0]] == tw.DEPOSIT_DEFAULT
            assert repair == [{"name": gold["name"], "arguments": {acct[0]: acct[1], amount[0]: amount[1] - tw.DEPOSIT_DEFAULT}}]
        else:  # level 5: the corrected transfer undoes the wrong-way one, and once more makes it
            assert repair == [{"name": gold["name"], "arguments": gold["arguments"]}] * 2
        if "accounts" in t.ground_truth:
            assert _final_accounts(t, msgs) == t.ground_truth["accounts"]


def test_unknown_flavour_is_refused():
    with pytest.raises(ValueError, match="flavour must be one of"):
        asyncio.run(teachers.synthesize("direct", [], 1, False, io.StringIO()))
