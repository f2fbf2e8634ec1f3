"""BFCL calls run in killable child processes: a pathological call costs its own trajectory, within its limit."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval not installed (pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0)")

from env_helpers import bfcl_entries, bfcl_spec  # noqa: E402

from verl_toolmaster.envs import make_env  # noqa: E402
from verl_toolmaster.envs.bfcl_env import BfclRuntime, bfcl_runtime, configure_bfcl  # noqa: E402
from verl_toolmaster.envs.trusted_pool import CallTimeout, TrustedPool, TrustedPoolConfig  # noqa: E402

pytestmark = pytest.mark.bfcl
LIMIT_S = 2.0


@pytest.fixture
def short_bfcl_limit():
    before = bfcl_runtime()
    configure_bfcl(BfclRuntime(timeout_s=LIMIT_S))
    yield
    configure_bfcl(before)


def _math_env(shared_data):
    docs = [json.loads(x) for x in (shared_data / "bfcl" / "multi_turn_func_doc" / "math_api.json").read_text().splitlines() if x.strip()]
    return make_env({"kind": "bfcl", "initial_config": {}, "involved_classes": ["MathAPI"], "tools": docs})


async def _max_stall(stop: asyncio.Event) -> float:
    worst, last = 0.0, time.perf_counter()
    while not stop.is_set():
        await asyncio.sleep(0.01)
        now = time.perf_counter()
        worst, last = max(worst, now - last), now
    return worst


async def test_bfcl_huge_power_times_out_within_its_limit_without_stalling_the_loop(shared_data, short_bfcl_limit):
    env = _math_env(shared_data)
    assert (await env.call("add", {"a": 1, "b": 2})).ok  # warm the child: start-up is not part of the bound
    stop = asyncio.Event()
    ticker = asyncio.ensure_future(_max_stall(stop))
    started = time.perf_counter()
    obs = await env.call("power", {"base": 7, "exponent": 10**7})  # ~10 s of GIL-holding big-int arithmetic
    elapsed = time.perf_counter() - started
    stop.set()
    stall = await ticker
    assert obs.error_kind == "timeout" and "did not finish within 2 s" in obs.text, obs
    assert elapsed < LIMIT_S + 1.0, elapsed
    assert stall < 0.5, f"the event loop stalled {stall:.2f} s"
    assert env.metrics.errors == {"timeout": 1}
    again = await env.call("power", {"base": 2, "exponent": 10})  # the env still works after its child was replaced
    assert again.ok and "1024" in again.text


async def test_bfcl_timeout_keeps_the_state_before_the_call_and_other_trajectories_run(shared_data, short_bfcl_limit):
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    slow, other = _math_env(shared_data), make_env(bfcl_spec(shared_data, entry))
    assert (await other.call("cd", {"folder": "document"})).ok
    hang = asyncio.ensure_future(slow.call("power", {"base": 7, "exponent": 10**7}))
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    ok = await other.call("mkdir", {"dir_name": "during_the_hang"})  # served by the other child meanwhile
    assert ok.ok and time.perf_counter() - started < 1.0
    assert (await hang).error_kind == "timeout"
    assert "during_the_hang" in (await other.call("ls", {})).text


def test_trusted_pool_timeout_kills_and_replaces_the_child():
    pool = TrustedPool(TrustedPoolConfig(workers=1))
    try:
        assert pool.submit("time:sleep", 0, timeout_s=30).result() is None
        first = pool.child_pids()
        started = time.perf_counter()
        with pytest.raises(CallTimeout):
            pool.submit("time:sleep", 60, timeout_s=1.0).result()
        assert time.perf_counter() - started < 2.0
        assert pool.submit("math:factorial", 5, timeout_s=30).result() == 120
        assert pool.child_pids() != first and pool.stats["timeouts"] == 1
        with pytest.raises(ZeroDivisionError):  # the job's own exception reaches the caller
            pool.submit("operator:truediv", 1, 0, timeout_s=30).result()
    finally:
        pool.close()


@pytest.mark.parametrize("kwargs, message", [
    ({"isolation": "thread"}, "isolation='thread' must be 'process' or 'inline'"),
    ({"timeout_s": 0}, "timeout_s=0 must be > 0"),
    ({"workers": 0}, "workers=0 must be an integer >= 1"),
    ({"memory_mb": 10}, "memory_mb=10 must be an integer >= 256"),
])
def test_bfcl_runtime_validation_names_the_key(kwargs, message):
    with pytest.raises(ValueError, match=f"bfcl: {message}".replace("(", r"\(").replace(")", r"\)")):
        BfclRuntime(**kwargs)
