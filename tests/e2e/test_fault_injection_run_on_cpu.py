"""Slow: one real CPU main_ppo GRPO run with faults injected, and one over-long prompt.

Rows (scripted rollout: every trajectory trials add(1, 1), executes add(2, 3), answers 5):
* a Python tool that SIGKILLs its own sandbox worker mid-call (the pool replaces it);
* StableToolBench-style http tools against a server on 127.0.0.1 that answers 500, 429, or too slowly;
* a row whose ground truth makes the reward scorer raise;
* a row whose tool catalogue pushes the prompt past data.max_prompt_length (verl left-truncates it);
* control rows. The backends are configured through the trainer config (custom.toolmaster.{sandbox,http}).
Every step must complete, every trajectory must have a termination reason and a reward, and the step metrics
must count each fault.
"""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from e2e_helpers import parse_steps, run_script
from verl_toolmaster.data.sft import write_rl_parquet
from verl_toolmaster.data.task import Task, rl_row
from verl_toolmaster.protocol import system_prompt

pytestmark = pytest.mark.slow

SCRIPT = [
    '<trial>Probe add.</trial>\n<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": 1}}\n</tool_call><|im_end|>',
    '<execute>Add.</execute>\n<tool_call>\n{"name": "add", "arguments": {"a": 2, "b": 3}}\n</tool_call><|im_end|>',
    "<answer>5</answer><|im_end|>",
]
PROMPT_LIMIT = 1024
SLOW_S = 3.0  # the http client's per-attempt timeout is 1 s


def add_tool(description: str = "Add two integers.") -> dict:
    return {"type": "function", "function": {"name": "add", "description": description, "parameters": {
        "type": "object", "properties": {"a": {"type": "integer", "description": "first"}, "b": {"type": "integer", "description": "second"}},
        "required": ["a", "b"]}}}


def python_env(code: str, description: str = "Add two integers.") -> dict:
    return {"kind": "python", "tools": [add_tool(description)], "code": {"add": code}}


def http_env(behaviour: str) -> dict:
    return {"kind": "http", "tools": [add_tool()], "api_map": {"add": {"category": "Math", "tool_name": "calc", "api_name": behaviour}}}


GOOD = "def add(a, b):\n    return a + b\n"
KILLER = "import os, signal\ndef add(a, b):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
GT = {"answer": "5", "answer_type": "number", "sub_answers": {}}


class FaultServer:
    """A StableToolBench-like /virtual endpoint on 127.0.0.1 whose api_name picks the fault; counts what it served."""

    def __init__(self):
        self.served: dict[str, int] = {}
        lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                kind = body.get("api_name", "?")
                with lock:
                    outer.served[kind] = outer.served.get(kind, 0) + 1
                if kind == "slow":
                    time.sleep(SLOW_S)
                status = {"http500": 500, "http429": 429}.get(kind, 200)
                data = json.dumps({"error": "", "response": "5"} if status == 200 else {"detail": "injected"}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up on a slow reply
                    pass

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/virtual"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fault_run")
    rows = [
        ("control", python_env(GOOD), GT),
        ("killed_worker", python_env(KILLER), GT),
        ("http500", http_env("http500"), GT),
        ("http429", http_env("http429"), GT),
        ("slow", http_env("slow"), GT),
        ("scorer_raises", python_env(GOOD), {"answer_type": "number"}),  # no "answer": the ToolHop scorer raises
        ("long_prompt", python_env(GOOD, "Add two integers. " + "Background: " + "more detail " * 1500), GT),
        ("control2", python_env(GOOD), GT),
    ]
    tasks = [Task(id=name, source="toolhop", query="What is 2 + 3? Use the tools.", env=env, ground_truth=gt) for name, env, gt in rows]
    data = tmp / "faults.parquet"
    write_rl_parquet([rl_row(t, i, system_prompt("on")) for i, t in enumerate(tasks)], data)
    script = tmp / "script.json"
    script.write_text(json.dumps({"turns": SCRIPT}))
    rollouts = tmp / "rollouts"
    tm = "+actor_rollout_ref.rollout.custom.toolmaster"
    with FaultServer() as server:
        proc = run_script(
            "recipes/cpu/run_grpo_tiny.sh", tmp / "out",
            "trainer.total_training_steps=2", "trainer.save_freq=-1", f"trainer.rollout_data_dir={rollouts}",
            f"data.max_prompt_length={PROMPT_LIMIT}", "data.max_response_length=256", "data.train_batch_size=4",
            f"{tm}.sandbox.workers=1", f"{tm}.http.url={server.url}", f"{tm}.http.timeout_s=1", f"{tm}.http.deadline_s=5",
            f"{tm}.http.retries=2", f"{tm}.http.backoff_s=0.1", f"{tm}.http.breaker_failures=1000",
            env={"TRAIN_DATA": str(data), "TOOLMASTER_HFCPU_SCRIPT": str(script)}, timeout=900,
        )
        served = dict(server.served)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    steps = parse_steps(log)
    assert sorted(steps) == [1, 2], f"steps seen: {sorted(steps)}"
    dumps = [json.loads(line) for f in rollouts.glob("*.jsonl") for line in f.read_text().splitlines()]
    return {"steps": steps, "log": log, "served": served, "dumps": dumps}


def total(steps: dict, key: str) -> float:
    return sum(m.get(key, 0.0) for m in steps.values())


def test_fault_injection_grpo_run_scores_every_trajectory_and_counts_each_fault(fault_run):
    steps = fault_run["steps"]
    for n, m in steps.items():
        assert m["toolmaster/trajectories"] == 8.0, (n, m["toolmaster/trajectories"])  # 4 rows x n=2
        assert m["toolmaster/missing/termination"] == 0.0 and m["toolmaster/missing/reward"] == 0.0, n
        assert math.isclose(sum(v for k, v in m.items() if k.startswith("toolmaster/termination/")), 1.0), n
        assert math.isclose(sum(v for k, v in m.items() if k.startswith("reward/reason/")), 1.0), n
        assert math.isfinite(m["critic/score/mean"]) and "actor/pg_loss" in m
    # one epoch over 2 steps: each faulty row ran n=2 trajectories x 2 calls
    assert total(steps, "toolmaster/tool_errors/resource/count") == 4.0  # the worker killed mid-call, each time
    assert total(steps, "toolmaster/tool_errors/http/count") == 12.0  # 500, 429 and slow rows, after retries
    assert total(steps, "toolmaster/tool_errors/timeout/count") == 0.0  # the http client's deadline came first
    scorer_errors = sum(m.get("reward/scorer_error/mean", 0.0) * m["toolmaster/trajectories"] for m in steps.values())
    assert scorer_errors == pytest.approx(2.0)
    served = fault_run["served"]
    assert served.get("http500", 0) >= 12 and served.get("http429", 0) >= 12 and served.get("slow", 0) >= 4, served
    assert len(fault_run["dumps"]) == 16 and all(math.isfinite(d["score"]) for d in fault_run["dumps"])


def test_truncated_prompt_is_counted_in_the_train_metrics(fault_run):
    steps = fault_run["steps"]
    assert total(steps, "toolmaster/prompt_truncated/count") == 2.0  # the long row, n=2
    assert max(m["toolmaster/prompt_tokens/max"] for m in steps.values()) > PROMPT_LIMIT
    assert fault_run["log"].count("were left-truncated by verl") == 1  # the one-time warning, with the row and length
