"""The http (StableToolBench) environment against a local fake virtual API server with injected faults."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest
from aiohttp import web

from verl_toolmaster.envs import make_env
from verl_toolmaster.envs.http_env import HttpConfig, HttpEnv, VirtualApiClient, configure_http

TOOLS = [{"type": "function", "function": {"name": "songkick_artist_for_theclique", "parameters": {"type": "object", "properties": {"artist_id": {"type": "string"}}}}}]
API_MAP = {"songkick_artist_for_theclique": {"category": "Data", "tool_name": "TheClique", "api_name": "Songkick artist"}}
SPEC = {"kind": "http", "tools": TOOLS, "api_map": API_MAP}


class FakeServer:
    """StableToolBench's /virtual contract with a switchable behaviour."""

    def __init__(self):
        self.mode = "ok"
        self.fail_first = 0  # with mode "flaky": this many 500s, then ok
        self.requests: list[tuple[dict, dict]] = []
        self.inflight = self.max_inflight = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((await request.json(), dict(request.headers)))
        self.inflight += 1
        self.max_inflight = max(self.max_inflight, self.inflight)
        try:
            mode = self.mode
            if mode == "flaky":
                mode = "500" if len(self.requests) <= self.fail_first else "ok"
            if mode == "slow":
                await asyncio.sleep(1.0)
            if mode == "busy":
                await asyncio.sleep(0.1)
            if mode == "500":
                return web.Response(status=500, text="Internal Server Error")
            if mode == "422":
                return web.Response(status=422, text='{"detail": "field required"}')
            if mode == "malformed":
                return web.Response(status=200, text='{"error": "", "response": ', content_type="application/json")
            if mode == "api_error":
                return web.json_response({"error": "Rate limit per minute exceeded", "response": ""})
            body, _ = self.requests[-1]
            return web.json_response({"error": "", "response": {"api": body["api_name"], "input": json.loads(body["tool_input"])}})
        finally:
            self.inflight -= 1


@pytest.fixture
async def server():
    fake = FakeServer()
    app = web.Application()
    app.router.add_post("/virtual", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    fake.url = f"http://127.0.0.1:{port}/virtual"
    yield fake
    await runner.cleanup()


def env_for(url: str, **cfg) -> HttpEnv:
    base = dict(url=url, toolbench_key="k-123", timeout_s=1.0, retries=2, backoff_s=0.05, breaker_failures=3, breaker_reset_s=0.5)
    return HttpEnv(SPEC, client=VirtualApiClient(HttpConfig(**{**base, **cfg})))


async def test_request_and_reply_follow_the_virtual_server_format(server):
    env = env_for(server.url)
    obs = await env.call("songkick_artist_for_theclique", {"artist_id": "520117-arctic-monkeys"})
    assert obs.ok and json.loads(obs.text) == {"error": "", "response": {"api": "Songkick artist", "input": {"artist_id": "520117-arctic-monkeys"}}}
    body, headers = server.requests[0]
    assert body == {
        "category": "Data",
        "tool_name": "TheClique",
        "api_name": "Songkick artist",
        "tool_input": '{"artist_id": "520117-arctic-monkeys"}',
        "strip": "truncate",
        "toolbench_key": "k-123",
    }
    assert headers["toolbench_key"] == "k-123"
    c = env.client.counters
    assert (c.calls, c.ok, c.requests, c.retries) == (1, 1, 1, 0)


async def test_api_error_field_is_an_error_observation(server):
    server.mode = "api_error"
    env = env_for(server.url)
    obs = await env.call("songkick_artist_for_theclique", {})
    assert not obs.ok and obs.error_kind == "exception" and "Rate limit per minute exceeded" in obs.text
    assert env.client.counters.api_errors == 1 and env.client.counters.retries == 0


def _free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def test_server_down_fails_in_bounded_time():
    env = env_for(f"http://127.0.0.1:{_free_port()}/virtual")
    t = time.monotonic()
    obs = await env.call("songkick_artist_for_theclique", {"artist_id": "x"})
    assert time.monotonic() - t < 2.0
    assert obs.error_kind == "http" and "failed after 3 attempts" in obs.text and "cannot reach" in obs.text
    c = env.client.counters
    assert (c.requests, c.retries, c.connect_errors, c.failed) == (3, 2, 3, 1)


async def test_slow_server_times_out(server):
    server.mode = "slow"
    env = env_for(server.url, timeout_s=0.2, retries=1)
    t = time.monotonic()
    obs = await env.call("songkick_artist_for_theclique", {})
    assert time.monotonic() - t < 1.5
    assert obs.error_kind == "http" and "no reply within 0.2 s" in obs.text
    assert env.client.counters.timeouts == 2


async def test_deadline_bounds_the_whole_call(server):
    server.mode = "slow"
    env = env_for(server.url, timeout_s=5.0, retries=5, deadline_s=0.4)
    t = time.monotonic()
    obs = await env.call("songkick_artist_for_theclique", {})
    assert time.monotonic() - t < 1.0 and obs.error_kind == "http"


async def test_500s_are_retried_then_reported(server):
    server.mode = "500"
    env = env_for(server.url)
    obs = await env.call("songkick_artist_for_theclique", {})
    assert obs.error_kind == "http" and "HTTP 500" in obs.text
    assert env.client.counters.http_status == {500: 3} and len(server.requests) == 3


async def test_transient_500s_then_success(server):
    server.mode, server.fail_first = "flaky", 2
    env = env_for(server.url)
    obs = await env.call("songkick_artist_for_theclique", {"artist_id": "a"})
    assert obs.ok
    c = env.client.counters
    assert (c.requests, c.retries, c.ok, c.http_status) == (3, 2, 1, {500: 2})


async def test_client_errors_are_not_retried(server):
    server.mode = "422"
    env = env_for(server.url)
    obs = await env.call("songkick_artist_for_theclique", {})
    assert obs.error_kind == "http" and "HTTP 422" in obs.text and "field required" in obs.text
    assert len(server.requests) == 1


async def test_malformed_json_is_an_http_error(server):
    server.mode = "malformed"
    env = env_for(server.url, retries=1)
    obs = await env.call("songkick_artist_for_theclique", {})
    assert obs.error_kind == "http" and "malformed reply" in obs.text
    assert env.client.counters.malformed == 2


async def test_circuit_breaker_opens_fails_fast_and_recovers(server):
    server.mode = "500"
    env = env_for(server.url, retries=0, breaker_failures=2, breaker_reset_s=0.3)
    for _ in range(2):
        assert (await env.call("songkick_artist_for_theclique", {})).error_kind == "http"
    sent = len(server.requests)
    obs = await env.call("songkick_artist_for_theclique", {})
    assert obs.error_kind == "http" and "circuit open" in obs.text
    assert len(server.requests) == sent and env.client.counters.breaker_rejections == 1 and env.client.circuit_open
    await asyncio.sleep(0.35)
    server.mode = "ok"
    assert (await env.call("songkick_artist_for_theclique", {})).ok  # the probe goes through and closes it
    assert not env.client.circuit_open and env.client.counters.breaker_trips == 1


async def test_concurrency_limit(server):
    server.mode = "busy"
    env = env_for(server.url, max_concurrency=3)
    results = await asyncio.gather(*(env.call("songkick_artist_for_theclique", {"artist_id": str(i)}) for i in range(12)))
    assert all(r.ok for r in results) and server.max_inflight == 3


async def test_make_env_uses_the_configured_client(server):
    client = configure_http(HttpConfig(url=server.url, retries=0))
    env = make_env(SPEC)
    assert env.client is client and (await env.call("songkick_artist_for_theclique", '{"artist_id": "q"}')).ok
    fork = env.fork()
    assert fork.client is client and (await fork.call("nope", {})).error_kind == "unknown_tool"


def test_spec_errors_name_the_tool():
    with pytest.raises(ValueError, match="api_map entry of tool 'songkick_artist_for_theclique'"):
        HttpEnv({"kind": "http", "tools": TOOLS, "api_map": {}})
