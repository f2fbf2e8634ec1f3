"""LLM teacher against a local fake OpenAI-compatible server: scripted replies (replaying scripted-teacher
trajectories, with a wrong answer and a trial-less reply mixed in), injected 429/500/timeouts, exhausted retries,
refused requests, and a run cancelled in the middle and resumed."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_openai import FakeOpenAI
from synth_helpers import LOOP_OVERRIDES, assert_sound, rl_rows, synth, written

from verl_toolmaster.synth.cli import _run, build_parser
from verl_toolmaster.synth.quality import message_text

WRONG, NO_TRIAL = "toolhop-015", "toolhop-019"  # tasks whose scripted replies are spoiled on purpose
FAST = ["--timeout", "1", "--backoff", "0.01", "--backoff-max", "0.05"]


@pytest.fixture(scope="module")
def scripts(scripted_run, rl_data):
    """query -> assistant turns, from the scripted teacher's variant-0 trajectories (ToolHop and BFCL base)."""
    _, out = scripted_run
    rl = {**rl_rows(rl_data["toolhop"]), **rl_rows(rl_data["bfcl"])}
    table, ids = {}, {}
    for row in written(out):
        if row["variant"] != 0 or row["task_id"] not in rl:
            continue
        query = rl[row["task_id"]]["prompt"][-1]["content"]
        turns = [message_text(m) for m in row["messages"] if m["role"] == "assistant"]
        if row["task_id"] == WRONG:
            turns[-1] = "<answer>certainly not the answer</answer>"
        if row["task_id"] == NO_TRIAL:
            turns = [t for t in turns if not t.startswith("<trial>")]
        table[query], ids[query] = turns, row["task_id"]
    for task_id, row in rl.items():  # tasks without a script still get a query -> id entry (for request logs)
        ids.setdefault(row["prompt"][-1]["content"], task_id)
    return table, ids


def locate(kind, body, queries):
    if kind == "chat":
        messages = body["messages"]
        text = next(m["content"] for m in messages if m["role"] == "user")
        query = next((q for q in queries if text == q), None)
        return query, sum(1 for m in messages if m["role"] == "assistant")
    prompt = body["prompt"]
    return next((q for q in queries if q in prompt), None), prompt.count("<|im_start|>assistant") - 1


def brain_for(scripts):
    table, ids = scripts

    def brain(kind, body):
        query, i = locate(kind, body, ids)
        turns = table.get(query)
        if turns is None:
            return "<answer>I do not know.</answer>", "stop"
        return (turns[i] if i < len(turns) else "<answer>script exhausted</answer>"), "stop"

    return brain


def task_of(entry, scripts):
    return scripts[1][locate(entry["kind"], entry["body"], scripts[1])[0]]


def llm_args(fake, *extra):
    return ["--base-url", fake.base_url, "--model", "fake-teacher", *FAST, *extra]


def test_chat_with_injected_faults(scripts, rl_data, tiny_model_dir, tmp_path):
    out = tmp_path / "llm.parquet"
    with FakeOpenAI(brain_for(scripts), faults={2: "429", 5: "500", 9: "timeout", 14: "500"}, hold_s=1.5) as fake:
        run = synth("llm", [rl_data["toolhop"], rl_data["bfcl"]], out, *llm_args(fake, "--concurrency", "3"), tokenizer=tiny_model_dir)
    assert run.code == 0, run.stderr
    s = run.summary
    scripted_ok = len(scripts[0]) - 2  # every replayed trajectory except the two spoiled ones
    assert s["kept"] == s["written"] == scripted_ok
    no_script = len(rl_rows(rl_data["toolhop"])) + len(rl_rows(rl_data["bfcl"])) - len(scripts[0])
    assert s["dropped"] == {"no_trial": no_script + 1, "score:wrong_answer": 1}
    assert s["failed"] == {}
    assert fake.injected() == {"429": 1, "500": 2, "timeout": 1}
    assert s["retries"] == {"429": 1, "5xx": 2, "timeout": 1}
    rl = {**rl_rows(rl_data["toolhop"]), **rl_rows(rl_data["bfcl"])}
    rows = written(out)
    assert WRONG not in {r["task_id"] for r in rows} and NO_TRIAL not in {r["task_id"] for r in rows}
    for row in rows:
        assert row["teacher"] == "llm:fake-teacher"
        assert_sound(row, rl[row["task_id"]], failed_probe=False)
    journal = [json.loads(line) for line in out.with_suffix(".jsonl").read_text().splitlines()]
    assert sorted(e["id"] for e in journal) == sorted(rl)  # every item journaled once


def test_completions_api_sends_the_loops_own_prompt(scripts, rl_data, tiny_model_dir, tiny_tokenizer, tmp_path):
    out = tmp_path / "llm.parquet"
    with FakeOpenAI(brain_for(scripts)) as fake:
        run = synth("llm", [rl_data["toolhop"]], out, *llm_args(fake, "--api", "completions"), tokenizer=tiny_model_dir)
        prompts = [e["body"]["prompt"] for e in fake.log]
    assert run.code == 0, run.stderr
    toolhop_scripts = sum(1 for q, t in scripts[1].items() if t.startswith("toolhop") and q in scripts[0])
    assert run.summary["kept"] == toolhop_scripts - 2
    assert all(p.startswith("<|im_start|>system\n") and p.endswith("<|im_start|>assistant\n") for p in prompts)
    assert all(e["body"]["stop"] == ["<|im_end|>", "<|endoftext|>"] for e in fake.log)
    rl = rl_rows(rl_data["toolhop"])
    for row in written(out):
        assert_sound(row, rl[row["task_id"]], failed_probe=False)


def test_exhausted_retries_are_not_journaled_and_the_rerun_retries_them(scripts, rl_data, tiny_model_dir, tmp_path):
    out = tmp_path / "llm.parquet"
    victim = "toolhop-021"
    first = lambda kind, body: "500" if task_of({"kind": kind, "body": body}, scripts) == victim else None  # noqa: E731
    with FakeOpenAI(brain_for(scripts), fault_if=first) as fake:
        run1 = synth("llm", [rl_data["toolhop"]], out, *llm_args(fake, "--max-retries", "2"), tokenizer=tiny_model_dir)
    assert run1.summary["failed"] == {"api_error:5xx": 1}
    assert run1.summary["retries"] == {"5xx": 2}
    journaled = {e["id"] for e in map(json.loads, out.with_suffix(".jsonl").read_text().splitlines())}
    assert victim not in journaled and len(journaled) == run1.summary["items"] - 1
    with FakeOpenAI(brain_for(scripts)) as fake:
        run2 = synth("llm", [rl_data["toolhop"]], out, *llm_args(fake), tokenizer=tiny_model_dir)
        asked = {task_of(e, scripts) for e in fake.log}
    assert asked == {victim}  # everything else came from the journal
    assert run2.summary["resumed"] == run2.summary["items"] - 1 and run2.summary["failed"] == {}
    ids = [r["task_id"] for r in written(out)]
    assert victim in ids and len(ids) == len(set(ids)) == run2.summary["kept"]


def test_refused_requests(scripts, rl_data, tiny_model_dir, tmp_path):
    victim = "toolhop-024"
    bad = lambda kind, body: "400" if task_of({"kind": kind, "body": body}, scripts) == victim else None  # noqa: E731
    with FakeOpenAI(brain_for(scripts), fault_if=bad) as fake:
        run = synth("llm", [rl_data["toolhop"]], tmp_path / "a.parquet", *llm_args(fake), tokenizer=tiny_model_dir)
    assert run.summary["dropped"]["api_error:bad_request"] == 1  # permanent: journaled as dropped, not retried
    entries = [json.loads(x) for x in (tmp_path / "a.jsonl").read_text().splitlines()]
    assert [e["reason"] for e in entries if e["id"] == victim] == ["api_error:bad_request"]
    with FakeOpenAI(brain_for(scripts), fault_if=lambda kind, body: "401") as fake:
        run = synth("llm", [rl_data["toolhop"]], tmp_path / "b.parquet", *llm_args(fake), tokenizer=tiny_model_dir)
        n_requests = len(fake.log)
    assert run.code == 1 and "refused the request (401" in run.stderr
    assert n_requests <= 4  # the run stops instead of trying every task (at most one request per running item)
    assert not (tmp_path / "b.parquet").exists()


def _journal_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_cancelled_run_resumes_with_each_id_once(scripts, rl_data, tiny_model_dir, tmp_path):
    """A run cancelled mid-way (plus a torn last journal line, as a kill during a write leaves) resumes: the second
    run asks the endpoint only about unfinished tasks and the output has each id exactly once."""
    out = tmp_path / "llm.parquet"
    journal = out.with_suffix(".jsonl")
    argv = [
        "llm",
        "--data",
        str(rl_data["toolhop"]),
        "--out",
        str(out),
        "--no-progress",
        "--tokenizer",
        str(tiny_model_dir),
        "--concurrency",
        "1",
    ]
    for o in LOOP_OVERRIDES:
        argv += ["--override", o]
    with FakeOpenAI(brain_for(scripts), delay_s=0.05) as fake:
        args = build_parser().parse_args([*argv, *llm_args(fake)])

        async def cancel_midway():
            task = asyncio.ensure_future(_run(args, io.StringIO(), io.StringIO()))
            while _journal_lines(journal) < 3:
                await asyncio.sleep(0.02)
                assert not task.done(), "the run finished before it could be interrupted"
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(cancel_midway())
    done = [json.loads(x)["id"] for x in journal.read_text().splitlines()]
    assert 3 <= len(done) < 10 and not out.exists()
    with open(journal, "a") as f:
        f.write('{"id": "toolhop-0')  # torn write
    with FakeOpenAI(brain_for(scripts)) as fake:
        run = synth("llm", [rl_data["toolhop"]], out, *llm_args(fake, "--concurrency", "1"), tokenizer=tiny_model_dir)
        asked = {task_of(e, scripts) for e in fake.log}
    assert "cut a torn last line" in run.stderr
    assert asked.isdisjoint(done) and asked | set(done) == set(rl_rows(rl_data["toolhop"]))
    assert run.summary["resumed"] == len(done)
    ids = [json.loads(x)["id"] for x in journal.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 10
    kept = [r["task_id"] for r in written(out)]
    assert len(kept) == len(set(kept)) == run.summary["kept"]


@pytest.mark.slow
def test_killed_process_resumes_with_each_id_once(scripts, rl_data, tiny_model_dir, tmp_path):
    """The same with a real SIGKILL of the CLI process in the middle of the run."""
    out = tmp_path / "llm.parquet"
    journal = out.with_suffix(".jsonl")
    base = [
        sys.executable,
        "-m",
        "verl_toolmaster.synth",
        "llm",
        "--data",
        str(rl_data["toolhop"]),
        "--out",
        str(out),
        "--no-progress",
        "--tokenizer",
        str(tiny_model_dir),
        "--concurrency",
        "1",
    ]
    for o in LOOP_OVERRIDES:
        base += ["--override", o]
    with FakeOpenAI(brain_for(scripts), delay_s=0.3) as fake:
        proc = subprocess.Popen([*base, *llm_args(fake)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + 300
        while _journal_lines(journal) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = [json.loads(x)["id"] for x in journal.read_text().splitlines() if x.strip()]
    assert 2 <= len(done) < 10 and not out.exists()
    with FakeOpenAI(brain_for(scripts)) as fake:
        res = subprocess.run([*base, *llm_args(fake)], capture_output=True, text=True, timeout=600)
        asked = {task_of(e, scripts) for e in fake.log}
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["resumed"] >= len(done) and asked.isdisjoint(done)
    ids = [json.loads(x)["id"] for x in journal.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 10
    kept = [r["task_id"] for r in written(out)]
    assert len(kept) == len(set(kept)) == summary["kept"]
