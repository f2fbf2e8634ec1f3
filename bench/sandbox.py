"""Sandboxed Python tool calls vs an in-process call of the same function, measured in one run.

    python bench/sandbox.py [--calls 2000] [--burst 4000] [--workers 0]

The tool is a ToolHop function from the shared data when it is present (``$TOOLMASTER_SHARED_DATA`` or
``data_prep/samples``), otherwise a built-in function of similar size; the JSON says which. Latency is the
median of sequential ``await env.call(...)`` through the public environment API (the pool warm); throughput
is a burst of concurrent calls. Last line: one JSON object with ``sandbox_median_ms``,
``sandbox_calls_per_s`` and ``ratio_to_in_process`` (sandbox median / in-process median).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from pathlib import Path

from verl_toolmaster.envs import make_env
from verl_toolmaster.envs.python_env import code_by_function
from verl_toolmaster.envs.sandbox_pool import SandboxConfig, configure_pool, get_pool
from verl_toolmaster.envs.sandbox_worker import compile_tool

BUILTIN_TOOL = '''
def word_stats(text, top=3, lowercase=True):
    """Count words and report the most frequent ones."""
    if not isinstance(text, str) or not text.strip():
        return {"error": "text must be a non-empty string"}
    words = [w.strip(".,;:!?") for w in (text.lower() if lowercase else text).split()]
    counts = {}
    for w in words:
        if w:
            counts[w] = counts.get(w, 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return {"words": len(words), "distinct": len(counts), "top": [w for w, _ in ranked]}
'''
BUILTIN_ARGS = {"text": "the quick brown fox jumps over the lazy dog and the fox naps", "top": 2}


def pick_tool() -> tuple[str, str, dict, str]:
    """(name, source, arguments, where it came from)."""
    root = Path(os.environ.get("TOOLMASTER_SHARED_DATA") or Path(__file__).resolve().parents[1] / "data_prep" / "samples")
    path = root / "toolhop" / "toolhop_dev10.jsonl"
    if path.is_file():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            if row["id"] == "toolhop-021":
                code = code_by_function(row["functions"])
                return "extract_last_name", code["extract_last_name"], {"full_name": "Eva Amurri"}, f"{path.name}:toolhop-021"
    return "word_stats", BUILTIN_TOOL, BUILTIN_ARGS, "built-in (shared data not found)"


def in_process_median_s(name: str, source: str, args: dict, n: int) -> float:
    ns: dict = {}
    exec(compile_tool(source, name), ns)  # trusted here: it is the benchmark's own reference run
    fn = ns[name]
    for _ in range(200):
        fn(**args)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn(**args)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def sandbox_runs(env, name: str, args: dict, n: int, burst: int) -> tuple[list[float], float, int]:
    for _ in range(100):  # warm: workers started, code compiled and cached
        assert (await env.call(name, args)).ok
    lat = []
    for _ in range(n):
        obs = await env.call(name, args)
        if not obs.ok:
            raise RuntimeError(f"sandboxed call failed: {obs}")
        lat.append(obs.latency_s)
    t = time.perf_counter()
    results = await asyncio.gather(*(env.call(name, args) for _ in range(burst)))
    elapsed = time.perf_counter() - t
    return lat, elapsed, sum(not r.ok for r in results)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000, help="sequential calls for the latency median")
    ap.add_argument("--burst", type=int, default=4000, help="concurrent calls for the throughput figure")
    ap.add_argument("--workers", type=int, default=0, help="sandbox workers (0: one per CPU core)")
    a = ap.parse_args()
    configure_pool(SandboxConfig(workers=a.workers))
    name, source, args, origin = pick_tool()
    tool = {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    env = make_env({"kind": "python", "tools": [tool], "code": {name: source}})

    base = in_process_median_s(name, source, args, a.calls)
    lat, elapsed, failed = asyncio.run(sandbox_runs(env, name, args, a.calls, a.burst))
    pool = get_pool()
    med = statistics.median(lat)
    p90 = statistics.quantiles(lat, n=10)[-1]
    print(f"tool {name} from {origin}; {pool.size} workers on {os.cpu_count()} cores", flush=True)
    print(f"in-process median {base * 1e6:.1f} us; sandboxed median {med * 1e3:.3f} ms (p90 {p90 * 1e3:.3f} ms)", flush=True)
    print(f"burst of {a.burst}: {a.burst / elapsed:.0f} calls/s, {failed} failed", flush=True)
    print(f"isolation: {pool.isolation}", flush=True)
    figures = {
        "sandbox_median_ms": round(med * 1e3, 4),
        "sandbox_p90_ms": round(p90 * 1e3, 4),
        "sandbox_calls_per_s": round(a.burst / elapsed, 1),
        "in_process_median_ms": round(base * 1e3, 5),
        "ratio_to_in_process": round(med / base, 1),
        "burst_failures": failed,
        "workers": pool.size,
        "cpu_cores": os.cpu_count(),
        "sequential_calls": a.calls,
        "burst_calls": a.burst,
        "tool": f"{name} ({origin})",
        "isolation": {k: v for k, v in (pool.isolation or {}).items() if k != "temp_dir"},
    }
    pool.close()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
