"""``--policy openai`` against a local fake server: both prompt formats, an unreachable endpoint, an endpoint
that starts failing mid-run, and resuming the partial output."""

from __future__ import annotations

import json

import pytest
from eval_fake_server import FakeCompletions, free_port
from eval_helpers import run_cli


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def answer_15(tokenizer, with_ids: bool):
    """A 'model' that answers 15 (toolhop-001's gold answer) to every request."""

    def reply(body):
        text = "<answer>15</answer>"
        ids = tokenizer.encode(text + "<|im_end|>", add_special_tokens=False) if with_ids else None
        return {"text": text, "token_ids": ids, "finish_reason": "stop"}

    return reply


def openai_args(base_url: str, tiny_model_dir, *extra: str) -> list[str]:
    return ["--policy", "openai", "--model", "fake-model", "--base-url", base_url, "--tokenizer", str(tiny_model_dir), *extra]


@pytest.mark.parametrize("prompt_format", ["ids", "text"])
def test_openai_policy_scores_the_servers_replies(prompt_format, prepared, tiny_model_dir, tokenizer, tmp_path, capsys):
    with FakeCompletions(answer_15(tokenizer, with_ids=prompt_format == "ids")) as server:
        run = run_cli(capsys, prepared("toolhop"), tmp_path / "out", *openai_args(server.base_url, tiny_model_dir, "--prompt-format", prompt_format))
    assert run.code == 0, run.stderr
    trajs = {t["id"]: t for t in run.trajectories()}
    assert len(trajs) == 10 and len(server.requests) == 10  # one answer turn per row
    first = server.requests[0]
    assert first["model"] == "fake-model" and first["temperature"] == 0.0  # verl's val_kwargs default: greedy
    if prompt_format == "ids":
        assert isinstance(first["prompt"], list) and all(isinstance(i, int) for i in first["prompt"])
        assert first["return_token_ids"] is True and first["skip_special_tokens"] is False
    else:
        assert isinstance(first["prompt"], str) and first["prompt"].startswith("<|im_start|>system\n")
    assert trajs["toolhop-001"]["reward"]["answer"] == 1.0
    assert all(t["reward"]["answer"] == 0.0 for i, t in trajs.items() if i != "toolhop-001")
    for t in trajs.values():  # the reply ends its turn with the chat template's end token either way
        assert t["termination"] == "answered" and t["turns"][-1]["text"] == "<answer>15</answer><|im_end|>"


def test_unreachable_endpoint_stops_with_a_clear_error_and_a_resumable_output(prepared, tiny_model_dir, tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/v1"
    out = tmp_path / "out"
    run = run_cli(capsys, prepared("toolhop"), out, *openai_args(url, tiny_model_dir, "--max-retries", "0"))
    assert run.code == 3
    assert f"openai endpoint {url} is unreachable" in run.stderr and "re-run the same command to continue" in run.stderr
    metrics = run.metrics
    assert metrics["run"]["complete"] is False and metrics["run"]["pending"] == 10 and metrics["overall"]["n"] == 0
    assert "unreachable" in metrics["run"]["fatal"]
    assert run.trajectories() == []
    assert "The run stopped early" in (out / "report.html").read_text()


def test_failing_endpoint_keeps_finished_rows_and_a_rerun_completes_the_rest(prepared, tiny_model_dir, tokenizer, tmp_path, capsys):
    out = tmp_path / "out"
    args = openai_args("", tiny_model_dir, "--concurrency", "1", "--max-retries", "1")
    with FakeCompletions(answer_15(tokenizer, with_ids=True), fail_after=4) as server:
        args[args.index("--base-url") + 1] = server.base_url
        run = run_cli(capsys, prepared("toolhop"), out, *args)
    assert run.code == 3
    assert "answered HTTP 500 after 1 retries" in run.stderr and "engine crashed" in run.stderr
    assert server.failed == 2  # the failing request and its one retry
    done = run.trajectories()
    assert len(done) == 4 and run.metrics["run"]["pending"] == 6 and run.metrics["overall"]["n"] == 4
    assert run.metrics["run"]["fatal"].endswith(")") and "stopped at row" in run.metrics["run"]["fatal"]

    with FakeCompletions(answer_15(tokenizer, with_ids=True)) as healthy:
        args[args.index("--base-url") + 1] = healthy.base_url
        rerun = run_cli(capsys, prepared("toolhop"), out, *args)
    assert rerun.code == 0, rerun.stderr
    assert len(healthy.requests) == 6  # only the rows that were missing
    trajs = rerun.trajectories()
    assert len(trajs) == 10 and len({t["id"] for t in trajs}) == 10
    assert [t["id"] for t in trajs[:4]] == [t["id"] for t in done]  # finished lines were kept as they were
    metrics = rerun.metrics
    assert metrics["run"]["complete"] and metrics["run"]["resumed"] == 4 and metrics["overall"]["n"] == 10
    assert json.loads((out / "run.json").read_text())["base_url"] == healthy.base_url


def test_a_rejected_request_is_not_retried_and_names_the_status(prepared, tiny_model_dir, tokenizer, tmp_path, capsys):
    """A strict server refusing vLLM's extra fields (HTTP 400): one request, a message that says what came back."""
    with FakeCompletions(answer_15(tokenizer, with_ids=True), fail_after=0, status=400) as server:
        run = run_cli(capsys, prepared("toolhop"), tmp_path / "out", *openai_args(server.base_url, tiny_model_dir, "--concurrency", "1"))
    assert run.code == 3 and server.failed == 1
    assert "answered HTTP 400: " in run.stderr and "retries" not in run.stderr.split("answered HTTP 400")[1].split("\n")[0]
