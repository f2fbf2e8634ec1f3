"""Record/replay cache: byte-identical replays, strict misses, no transient records, many concurrent writers."""

from __future__ import annotations

import json
import multiprocessing as mp
from typing import Any

import pytest
from env_helpers import bfcl_entries, bfcl_spec, toolhop_spec

from verl_toolmaster.envs import make_env
from verl_toolmaster.envs.base import Observation, ToolEnv, decode_arguments, digest, register_env, unknown_tool
from verl_toolmaster.envs.cache import CacheStore, CachedEnv
from verl_toolmaster.envs.calls import bind_arguments, parse_call_string
from verl_toolmaster.envs.sandbox_pool import get_pool


@register_env("test_counting")
class CountingEnv(ToolEnv):
    """A backend that counts how often it is really asked; ``flaky`` makes it answer with an http error."""

    backend_calls = 0

    def tools(self) -> list[dict[str, Any]]:
        return [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {}}}} for n in ("echo", "flaky")]

    async def call(self, name, arguments):
        if name not in self.tool_names():
            return unknown_tool(name, self.tool_names())
        arguments, err = decode_arguments(name, arguments)
        if err is not None:
            return err
        CountingEnv.backend_calls += 1
        if name == "flaky":
            return Observation(False, "Error: server down", "http")
        return Observation(True, json.dumps({"echo": arguments, "n": self.spec.get("salt", 0)}, sort_keys=True))

    def fork(self):
        return CountingEnv(self.spec)

    def fingerprint(self, name):
        return digest({"tool": name, "salt": self.spec.get("salt", 0)})  # the backend depends on the salt


async def _replay_gold(env, row):
    out = []
    for call in row["gold_calls"]:
        name, args, kwargs = parse_call_string(call)
        obs = await env.call(name, bind_arguments(name, env.positional_params(name), args, kwargs))
        out.append((obs.ok, obs.text, obs.error_kind))
    return out


async def test_toolhop_replay_is_byte_identical_and_never_runs_tools(toolhop_rows, tmp_path):
    path = str(tmp_path / "toolhop.jsonl")
    traced = [r for r in toolhop_rows if r["gold_calls"]]
    recorded = [await _replay_gold(make_env({**toolhop_spec(r), "cache": {"mode": "record", "path": path}}), r) for r in traced]
    pool_calls = get_pool().stats["calls"]
    replayed = [await _replay_gold(make_env({**toolhop_spec(r), "cache": {"mode": "replay", "path": path}}), r) for r in traced]
    assert replayed == recorded
    assert [t.encode() for run in replayed for _, t, _ in run] == [t.encode() for run in recorded for _, t, _ in run]
    assert get_pool().stats["calls"] == pool_calls, "replay must not touch the sandbox"
    lines = (tmp_path / "toolhop.jsonl").read_text().splitlines()
    assert len(lines) == sum(len(r["gold_calls"]) for r in traced)


async def test_replay_miss_is_an_error_naming_the_call(tmp_path):
    env = make_env({"kind": "test_counting", "cache": {"mode": "replay", "path": str(tmp_path / "c.jsonl")}})
    before = CountingEnv.backend_calls
    obs = await env.call("echo", {"b": 2, "a": [1]})
    assert obs.error_kind == "cache_miss" and 'echo({"a": [1], "b": 2})' in obs.text and "c.jsonl" in obs.text
    assert CountingEnv.backend_calls == before
    # calls the backend never sees are still answered in replay mode
    assert (await env.call("nope", {})).error_kind == "unknown_tool"
    assert (await env.call("echo", "{oops")).error_kind == "bad_arguments"


async def test_record_reads_through_and_keys_on_canonical_arguments(tmp_path):
    spec = {"kind": "test_counting", "cache": {"mode": "record", "path": str(tmp_path / "c.jsonl")}}
    env = make_env(spec)
    before = CountingEnv.backend_calls
    first = await env.call("echo", {"x": 1, "y": [1, 2]})
    again = await make_env(spec).call("echo", '{"y": [1, 2], "x": 1}')  # other key order, JSON string
    assert again.text == first.text and CountingEnv.backend_calls == before + 1
    assert isinstance(env, CachedEnv) and (env.hits, env.misses, env.recorded) == (0, 1, 1)
    other_task = await make_env({**spec, "salt": 7}).call("echo", {"x": 1, "y": [1, 2]})
    assert CountingEnv.backend_calls == before + 2 and '"n": 7' in other_task.text  # fingerprints differ


async def test_transient_errors_are_not_recorded(tmp_path):
    path = tmp_path / "c.jsonl"
    env = make_env({"kind": "test_counting", "cache": {"mode": "record", "path": str(path)}})
    assert (await env.call("flaky", {})).error_kind == "http"
    assert not path.exists() or path.read_text() == ""
    assert (await make_env({"kind": "test_counting", "cache": {"mode": "replay", "path": str(path)}}).call("flaky", {})).error_kind == "cache_miss"


async def test_stateful_kinds_key_on_the_call_history(shared_data, tmp_path):
    pytest.importorskip("bfcl_eval")
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    path = str(tmp_path / "bfcl.jsonl")
    calls = [("cd", {"folder": "document"}), ("mkdir", {"dir_name": "x"}), ("ls", {})]
    rec = make_env({**bfcl_spec(shared_data, entry), "cache": {"mode": "record", "path": path}})
    recorded = [(await rec.call(n, a)).text for n, a in calls]
    rep = make_env({**bfcl_spec(shared_data, entry), "cache": {"mode": "replay", "path": path}})
    assert [(await rep.call(n, a)).text for n, a in calls] == recorded
    assert (await rep.call("ls", {})).error_kind == "cache_miss"  # a 4th call has a history never recorded
    fresh = make_env({**bfcl_spec(shared_data, entry), "cache": {"mode": "replay", "path": path}})
    assert (await fresh.call("ls", {})).error_kind == "cache_miss"  # same call, different history


def _writer(path: str, worker: int, n: int) -> None:
    import asyncio

    async def run():
        env = make_env({"kind": "test_counting", "cache": {"mode": "record", "path": path}})
        for i in range(n):
            await env.call("echo", {"i": i % 40, "w": worker % 2})  # heavy overlap between writers

    asyncio.run(run())


def test_concurrent_writers_keep_the_file_consistent(tmp_path):
    path = str(tmp_path / "shared.jsonl")
    ctx = mp.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 120)) for w in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    lines = (tmp_path / "shared.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]  # every line is whole
    keys = [r["key"] for r in records]
    assert len(keys) == len(set(keys)) == 80  # 40 argument sets x 2 values of w, each exactly once


def test_torn_or_foreign_lines_are_skipped_and_counted(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"key": "k1", "ok": true, "text": "t", "error_kind": null}\nnot json\n{"no_key": 1}\n{"key": "k2"')
    store = CacheStore(path)
    assert set(store.records) == {"k1"} and store.skipped_lines == 2 and store.offset < path.stat().st_size


def test_bad_cache_options():
    with pytest.raises(ValueError, match="cache mode must be one of"):
        make_env({"kind": "test_counting", "cache": {"mode": "sometimes", "path": "x"}})
    with pytest.raises(ValueError, match="needs a 'path'"):
        make_env({"kind": "test_counting", "cache": {"mode": "replay"}})
