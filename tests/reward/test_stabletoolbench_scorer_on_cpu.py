"""StableToolBench: the offline api_selection_proxy on the shared queries, and the LLM judge against a local
OpenAI-compatible stand-in server (the real `openai` client, real HTTP)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from reward_helpers import call, episode

from verl_toolmaster.reward.scorers.stabletoolbench import (
    JudgeConfig,
    JudgeConfigError,
    StableToolBenchScorer,
    toolbench_function_name,
)

PROXY = StableToolBenchScorer()
KEY = "stabletoolbench/api_selection_proxy"


def _names(task):
    """Function names of the task's relevant APIs, through the env spec's api_map."""
    by_api = {(e["source_tool_name"], e["source_api_name"]): n for n, e in task.env["api_map"].items()}
    return [by_api[tuple(p)] for p in task.ground_truth["relevant_apis"]]


def test_proxy_selecting_all_relevant_apis_scores_one(tasks):
    for t in tasks("stabletoolbench"):
        calls = [call(n, {}) for n in _names(t)]
        r = PROXY.score(t.ground_truth, episode(["Here is what I found."], calls, env=t.env))
        assert (r.answer, r.reason) == (1.0, "proxy_all_relevant_apis"), t.id
        assert r.details[KEY] == 1.0 and r.details["stabletoolbench/judge_solved"] is None


def test_proxy_partial_and_wrong_selection(tasks):
    t = next(t for t in tasks("stabletoolbench") if len(t.ground_truth["relevant_apis"]) >= 2)
    names = _names(t)
    other = next(n for n in t.env["api_map"] if n not in names)
    half = PROXY.score(t.ground_truth, episode(["ok"], [call(names[0], {})], env=t.env))
    n = len(names)
    assert half.answer == pytest.approx(2 * (1 / n) / (1 + 1 / n))  # precision 1, recall 1/n
    assert half.reason == "proxy_partial_api_selection"
    noisy = PROXY.score(t.ground_truth, episode(["ok"], [call(x, {}) for x in names + [other]], env=t.env))
    assert noisy.answer < 1.0 and noisy.details["stabletoolbench/api_precision_proxy"] == pytest.approx(n / (n + 1))
    wrong = PROXY.score(t.ground_truth, episode(["ok"], [call(other, {})], env=t.env))
    assert (wrong.answer, wrong.reason) == (0.0, "proxy_no_relevant_api")
    trial_only = PROXY.score(t.ground_truth, episode(["ok"], [call(x, {}, phase="trial") for x in names], env=t.env))
    assert trial_only.answer == 0.0
    unanswered = PROXY.score(t.ground_truth, episode([None], [call(x, {}) for x in names], env=t.env))
    assert (unanswered.answer, unanswered.reason) == (0.0, "no_answer")


def test_proxy_without_env_spec_uses_toolbench_naming(tasks):
    t = tasks("stabletoolbench")[0]
    assert _names(t)[0] == toolbench_function_name(*t.ground_truth["relevant_apis"][0])
    calls = [call(toolbench_function_name(tool, api), {}) for tool, api in t.ground_truth["relevant_apis"]]
    assert PROXY.score(t.ground_truth, episode(["ok"], calls)).answer == 1.0


# ---------------------------------------------------------------- judge


class _Judge(BaseHTTPRequestHandler):
    """/v1/chat/completions: "Solved" when the final answer mentions Messi, else "Unsolved"; records requests."""

    requests: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server API)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        user = body["messages"][-1]["content"]
        final = user.rsplit("Final answer:", 1)[-1]
        status = "Solved" if "Messi" in final else ("Unsure" if "maybe" in final else "Unsolved")
        content = json.dumps({"answer_status": status, "reason": "stand-in"})
        reply = {
            "id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
        }
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def judge_url():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Judge)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Judge.requests = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_judge_sync_and_async(tasks, judge_url):
    import asyncio

    t = tasks("stabletoolbench")[0]
    scorer = StableToolBenchScorer(JudgeConfig(mode="judge", base_url=judge_url, model="judge-model", max_retries=0))
    calls = [call(n, {"player": "Messi"}, text="x" * 5000) for n in _names(t)]
    solved = scorer.score(t.ground_truth, episode(["Messi played for Barcelona and PSG."], calls, env=t.env))
    assert (solved.answer, solved.reason) == (1.0, "judge_solved")
    assert solved.details["stabletoolbench/judge_solved"] == 1.0
    assert solved.details[KEY] == 1.0  # the proxy is still reported next to the judge
    unsure = asyncio.run(scorer.ascore(t.ground_truth, episode(["maybe"], calls, env=t.env)))
    assert (unsure.answer, unsure.reason) == (0.5, "judge_unsure")
    unsolved = asyncio.run(scorer.ascore(t.ground_truth, episode([None], calls, env=t.env)))
    assert (unsolved.answer, unsolved.reason) == (0.0, "judge_unsolved")
    assert len(_Judge.requests) == 3
    prompt = _Judge.requests[0]["messages"][-1]["content"]
    assert t.ground_truth["query"] in prompt and "[truncated]" in prompt and len(prompt) < 5000 * len(calls)


def test_judge_unreachable_is_a_judge_error_not_a_crash(tasks):
    t = tasks("stabletoolbench")[0]
    scorer = StableToolBenchScorer(JudgeConfig(mode="judge", base_url="http://127.0.0.1:9/v1", model="m", max_retries=0, timeout_s=2))
    r = scorer.score(t.ground_truth, episode(["ok"], env=t.env))
    assert (r.answer, r.reason) == (0.0, "judge_error")


@pytest.mark.parametrize(
    "reply,value",
    [('{"answer_status": "Solved", "reason": "r"}', 1.0), ("Status: Unsolved.", 0.0), ("```json\n{\"answer_status\": \"unsure\"}\n```", 0.5), ("solved? unsolved?", None), ("", None)],
)
def test_parse_verdict(reply, value):
    assert StableToolBenchScorer.parse_verdict(reply) == value


def test_required_judge_without_endpoint_is_a_config_error():
    with pytest.raises(JudgeConfigError, match="base_url"):
        JudgeConfig(mode="judge")
    with pytest.raises(JudgeConfigError, match="mode"):
        JudgeConfig(mode="llm")
    assert not JudgeConfig(mode="auto").active and JudgeConfig().mode == "proxy"
