"""Helpers of the synthesis tests: prepare RL rows, run the synth CLI in-process, replay a written trajectory."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from verl_toolmaster.data.prepare import main as prepare_main
from verl_toolmaster.data.sft import read_sft_rows
from verl_toolmaster.envs import make_env
from verl_toolmaster.protocol import parse_turn
from verl_toolmaster.reward.scorers import Episode, load_builtin_scorers
from verl_toolmaster.synth.cli import main as synth_main
from verl_toolmaster.synth.quality import message_text

# Loop settings of the tests: BFCL multi-turn episodes need more assistant turns than the default 16, and tool
# responses are not clipped so a replay can compare observations exactly.
LOOP_OVERRIDES = [
    "+actor_rollout_ref.rollout.custom.toolmaster.max_turns=64",
    "actor_rollout_ref.rollout.multi_turn.max_tool_response_length=100000",
]


def prepare(shared: Path, out: Path, dataset: str, input_name: str, *extra: str) -> Path:
    code = prepare_main(["--dataset", dataset, "--input", str(shared / input_name), "--output", str(out), "--no-progress", *extra])
    assert code == 0, f"prepare.py failed for {dataset}"
    return out


def rl_rows(path: Path) -> dict[str, dict[str, Any]]:
    return {r["extra_info"]["task_id"]: r for r in pq.read_table(str(path)).to_pylist()}


class SynthRun:
    """One in-process ``python -m verl_toolmaster.synth`` run."""

    def __init__(self, argv: list[str]):
        self.out, self.err = io.StringIO(), io.StringIO()
        self.code = synth_main(argv, out=self.out, err=self.err)
        self.stdout, self.stderr = self.out.getvalue(), self.err.getvalue()
        lines = self.stdout.strip().splitlines()
        self.summary = json.loads(lines[-1]) if self.code == 0 else None


def synth(teacher: str, data: list[Path], out: Path, *extra: str, tokenizer: Path | None = None) -> SynthRun:
    argv = [teacher, *(a for p in data for a in ("--data", str(p))), "--out", str(out), "--no-progress"]
    for o in LOOP_OVERRIDES:
        argv += ["--override", o]
    if tokenizer is not None:
        argv += ["--tokenizer", str(tokenizer)]
    return SynthRun([*argv, *extra])


def written(path: Path) -> list[dict[str, Any]]:
    return read_sft_rows(path)


async def _replay(sft: dict[str, Any], rl: dict[str, Any]) -> dict[str, Any]:
    """Re-run every call of a written trajectory against a fresh environment built from the RL row's spec (trials
    on a fork per user turn, executions on the environment) and collect what the environment really returned."""
    env = make_env(rl["extra_info"]["env"])
    n_turns = 1 + len(json.loads(rl["extra_info"]["follow_up"]))
    answers: list[str | None] = [None] * n_turns
    calls: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []  # (tool message in the row, observation of the replay)
    pending: list[str] = []
    fork = None
    turn, after_answer = 0, False
    try:
        for m in sft["messages"][len(rl["prompt"]) :]:
            role = m["role"]
            if role == "user":
                if after_answer:
                    turn, after_answer = turn + 1, False
                    env.set_turn(turn)
                continue
            if role == "tool":
                pairs.append((m["content"], pending.pop(0)))
                continue
            parsed = parse_turn(message_text(m))
            assert parsed.violation is None, parsed.error
            if parsed.phase == "answer":
                answers[turn], after_answer = parsed.answer, True
                if fork is not None:  # the next user turn's trials get a fresh fork
                    await fork.close()
                    fork = None
                continue
            if parsed.phase == "trial":
                if fork is None:
                    fork = env.fork()
                    fork.set_turn(turn)
                target = fork
            else:
                if fork is not None:
                    await fork.close()
                    fork = None
                target = env
            for c in parsed.calls:
                obs = await target.call(c.name, c.arguments)
                pending.append(obs.text)
                calls.append(
                    {
                        "phase": parsed.phase,
                        "turn": turn,
                        "name": c.name,
                        "arguments": c.arguments,
                        "ok": obs.ok,
                        "error_kind": obs.error_kind,
                        "text": obs.text,
                        "latency_s": 0.0,
                    }
                )
    finally:
        if fork is not None:
            await fork.close()
        await env.close()
    return {"calls": calls, "answers": answers, "pairs": pairs, "unconsumed": pending}


def replay(sft: dict[str, Any], rl: dict[str, Any]) -> dict[str, Any]:
    return asyncio.run(_replay(sft, rl))


def rl_score(rl: dict[str, Any], calls: list[dict[str, Any]], answers: list[str | None]) -> Any:
    scorer = load_builtin_scorers()[rl["data_source"]]()
    return scorer.score(json.loads(rl["reward_model"]["ground_truth"]), Episode(answers=answers, calls=calls))


def assert_sound(sft: dict[str, Any], rl: dict[str, Any], failed_probe: bool = True) -> dict[str, Any]:
    """The properties every written trajectory must have, checked independently of the synthesis code's own checks."""
    r = replay(sft, rl)
    assert r["unconsumed"] == [], f"{sft['task_id']}: calls without a tool message"
    for written_text, real in r["pairs"]:
        assert written_text == real, f"{sft['task_id']}: an observation in the row is not what the environment returns"
    result = rl_score(rl, r["calls"], r["answers"])
    assert result.answer == 1.0, f"{sft['task_id']}: RL scorer says {result.reason}"
    trials = [c for c in r["calls"] if c["phase"] == "trial"]
    assert trials, f"{sft['task_id']}: no trial"
    if failed_probe:
        fixed = any(
            not c["ok"] and any(d["ok"] and d["name"] == c["name"] and d["turn"] == c["turn"] for d in r["calls"][i + 1 :])
            for i, c in enumerate(r["calls"])
            if c["phase"] == "trial"
        )
        assert fixed, f"{sft['task_id']}: no failed probe followed by a successful call of the same tool"
    tool_names = {t["function"]["name"] for t in sft["tools"]} | {c["name"] for c in r["calls"]}
    for m in sft["messages"][len(rl["prompt"]) :]:
        if m["role"] != "assistant":
            continue
        parsed = parse_turn(message_text(m), tool_names=tool_names)
        assert parsed.violations == [], f"{sft['task_id']}: {parsed.violations}"
        assert [(c.name, c.arguments) for c in parsed.calls] == [
            (c["function"]["name"], c["function"]["arguments"]) for c in m.get("tool_calls") or []
        ]
    return r
