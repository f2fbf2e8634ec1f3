"""Benchmark of ToolMasterAgentLoop against verl's ToolAgentLoop, side by side in one run.

``python bench/agent_loop.py [--trajectories 200] [--concurrent 512] [--latency-ms 50]``

1. Per-turn overhead, excluding generation and tool time: the same scripted episode
   (``<trial>`` + call, ``<execute>`` + call, ``<answer>``; three generations, two tool rounds) runs
   sequentially through both loops, each instantiated per trajectory the way verl's AgentLoopWorker does
   (``hydra.utils.instantiate``; timed separately and reported as ``*instantiate_ms``); overhead = wall time of
   ``run()`` - the loop's own ``generate_sequences`` and ``tool_calls`` timers, divided by the three turns. The server
   returns pre-tokenised turns instantly and the tools answer instantly, so what is left is the loop.
   Blocks of the two loops alternate so machine noise hits both; medians are compared.
2. Concurrency: ``--concurrent`` trajectories of our loop started at once, tools sleeping ``--latency-ms``
   (async); the loop instances are built before the timed window (verl's instantiation is the same for any
   loop). Ideal time = max(the same batch with instant tools, i.e. its pure CPU time; one trajectory's time
   plus its two tool waits): tool waits fully hidden behind other trajectories' work. Ratio = measured / ideal,
   each the best of ``--repeats`` alternating batches; the stall is the worst over them.
   verl's ToolAgentLoop runs the same batch for reference.
3. Event-loop stall: the longest event-loop iteration spent running callbacks (time between two returns to
   ``select``) during part 2, for both loops; a 5 ms heartbeat's worst lateness is reported as well (it also
   includes the OS's wake-up delay, which on a shared machine can dominate). Before part 2 the start-up heap
   is moved out of the cyclic collector's reach with ``gc.freeze()`` (``--no-gc-freeze`` to skip): otherwise a
   full collection of torch/transformers/verl objects stalls the loop for 0.3-1 s, with either agent loop.

The last line is one JSON object: overhead_ratio_vs_tool_agent_loop, concurrency_ratio_to_ideal,
max_loop_stall_ms, plus the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Any

from verl_toolmaster.envs import Observation, ToolEnv, register_env
from verl_toolmaster.protocol import system_prompt, turn_text

TOOLS = [
    {"type": "function", "function": {"name": "incr", "description": "Add to the counter.",
                                      "parameters": {"type": "object", "properties": {"by": {"type": "integer", "description": "amount"}}, "required": ["by"]}}},
    {"type": "function", "function": {"name": "get", "description": "Read the counter.",
                                      "parameters": {"type": "object", "properties": {}, "required": []}}},
]
EPISODE = [
    turn_text("trial", "what does incr return?", [{"name": "incr", "arguments": {"by": 2}}]) + "<|im_end|>",
    turn_text("execute", "add for real", [{"name": "incr", "arguments": {"by": 5}}]) + "<|im_end|>",
    turn_text("answer", "5") + "<|im_end|>",
]
TURNS = len(EPISODE)


@register_env("bench_counter")
class BenchEnv(ToolEnv):
    """Counter tools answering after ``spec["latency"]`` seconds (asyncio.sleep; 0 answers at once)."""

    def __init__(self, spec: dict[str, Any], value: int = 0):
        super().__init__(spec)
        self.value = value

    def tools(self) -> list[dict[str, Any]]:
        return TOOLS

    async def call(self, name: str, arguments: Any) -> Observation:
        if self.spec.get("latency"):
            await asyncio.sleep(self.spec["latency"])
        if name == "incr":
            self.value += int(arguments.get("by", 0))
        return Observation(True, str(self.value))

    def fork(self) -> "BenchEnv":
        return BenchEnv(self.spec, self.value)


class InstantServer:
    """Returns the next pre-tokenised turn of the episode for each request id, immediately."""

    def __init__(self, turns_ids: list[list[int]]):
        self.turns_ids = turns_ids
        self.next: dict[str, int] = {}

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any):
        from verl_toolmaster.compat import TokenOutput

        i = self.next.get(request_id, 0)
        self.next[request_id] = i + 1
        ids = self.turns_ids[min(i, len(self.turns_ids) - 1)]
        return TokenOutput(token_ids=ids, log_probs=[-0.1] * len(ids), num_preempted=0)


def verl_tools(latency: float) -> list[Any]:
    from verl_toolmaster.compat import FunctionTool, OpenAIFunctionToolSchema

    state = {"value": 0}

    async def incr(by: int) -> str:
        if latency:
            await asyncio.sleep(latency)
        state["value"] += by
        return str(state["value"])

    async def get() -> str:
        if latency:
            await asyncio.sleep(latency)
        return str(state["value"])

    return [FunctionTool(name=t["function"]["name"], fn=fn, tool_schema=OpenAIFunctionToolSchema.model_validate(t), is_async=True)
            for t, fn in zip(TOOLS, [incr, get])]


def compose_config(model_dir: str, response_length: int) -> Any:
    import verl
    from hydra import compose, initialize_config_dir

    cfg_dir = os.path.join(os.path.dirname(verl.__file__), "trainer", "config")
    with initialize_config_dir(config_dir=cfg_dir, version_base=None):
        return compose("ppo_trainer", overrides=[
            f"actor_rollout_ref.model.path={model_dir}",
            "actor_rollout_ref.rollout.name=vllm",
            "actor_rollout_ref.rollout.prompt_length=2048",
            f"actor_rollout_ref.rollout.response_length={response_length}",
            "data.max_prompt_length=2048",
            f"data.max_response_length={response_length}",
            "actor_rollout_ref.rollout.multi_turn.enable=true",
            "actor_rollout_ref.rollout.multi_turn.max_assistant_turns=8",
        ])


class TimedLoop(asyncio.SelectorEventLoop):
    """An event loop that records its longest busy iteration: the time between two returns to ``select``
    spent running callbacks, i.e. how long the loop could not react to anything (a stall). Unlike a
    heartbeat's lateness this excludes the OS's wake-up delay when the machine is shared."""

    def __init__(self) -> None:
        super().__init__()
        self.measuring = False
        self.worst_busy = 0.0
        self._selecting = 0.0
        select = self._selector.select

        def timed_select(timeout: float | None = None) -> Any:
            t = time.perf_counter()
            try:
                return select(timeout)
            finally:
                self._selecting += time.perf_counter() - t

        self._selector.select = timed_select

    def _run_once(self) -> None:
        self._selecting = 0.0
        t = time.perf_counter()
        super()._run_once()
        if self.measuring:
            self.worst_busy = max(self.worst_busy, time.perf_counter() - t - self._selecting)


class Harness:
    """Instantiates loops the way AgentLoopWorker._run_agent_loop does and times whole trajectories."""

    def __init__(self, cfg: Any, tokenizer: Any):
        from verl_toolmaster.compat import DictConfigWrap, RLHFDataset, ToolListWrap

        self.cfg, self.tokenizer = cfg, tokenizer
        self.server = InstantServer([tokenizer.encode(t, add_special_tokens=False) for t in EPISODE])
        self.DictConfigWrap, self.ToolListWrap, self.dataset_cls = DictConfigWrap, ToolListWrap, RLHFDataset
        self.sampling = {"temperature": 1.0, "top_p": 1.0, "top_k": -1, "repetition_penalty": 1.0, "logprobs": True}

    def kwargs(self, ours: bool, latency: float, i: int) -> dict[str, Any]:
        mode_prompt = system_prompt("on")
        extra = {"index": i, "env": json.dumps({"kind": "bench_counter", "latency": latency})} if ours else {"index": i}
        return {"raw_prompt": [{"role": "system", "content": mode_prompt}, {"role": "user", "content": "Add 5 to the counter."}],
                "extra_info": extra, "tools_kwargs": {}, "index": i}

    def instantiate(self, ours: bool, tools: list[Any]) -> Any:
        """One loop instance, built as AgentLoopWorker._run_agent_loop builds it (inside the running loop)."""
        import hydra

        entry = {"_target_": "verl_toolmaster.agent_loop.ToolMasterAgentLoop" if ours
                 else "verl.experimental.agent_loop.tool_agent_loop.ToolAgentLoop"}
        return hydra.utils.instantiate(
            config=entry, trainer_config=self.DictConfigWrap(config=self.cfg), server_manager=self.server,
            tokenizer=self.tokenizer, processor=None, hf_model_type="qwen2", dataset_cls=self.dataset_cls,
            data_config=self.DictConfigWrap(self.cfg.data), tools=self.ToolListWrap(tools),
        )

    async def trajectory(self, loop: Any, ours: bool, latency: float, i: int) -> tuple[float, float, float, Any]:
        """Run one instantiated loop; returns (wall time of run, generation time, tool time, output)."""
        t0 = time.perf_counter()
        out = await loop.run(dict(self.sampling), **self.kwargs(ours, latency, i))
        total = time.perf_counter() - t0
        return total, out.metrics.generate_sequences, out.metrics.tool_calls, out


async def overhead_part(h: Harness, n: int, block: int) -> dict[str, Any]:
    tools = verl_tools(0.0)
    samples: dict[str, list[float]] = {"ours": [], "verl": []}
    totals: dict[str, list[float]] = {"ours": [], "verl": []}
    inits: dict[str, list[float]] = {"ours": [], "verl": []}
    for warm in range(5):  # import paths, caches and the thread pool warm up for both
        for ours in (True, False):
            await h.trajectory(h.instantiate(ours, tools), ours, 0.0, warm)
    i = 0
    while len(samples["ours"]) < n:
        for ours in (True, False):
            key = "ours" if ours else "verl"
            for _ in range(block):
                t0 = time.perf_counter()
                loop = h.instantiate(ours, tools)
                inits[key].append(time.perf_counter() - t0)
                total, gen, tool, out = await h.trajectory(loop, ours, 0.0, i)
                i += 1
                if ours:
                    info = out.extra_fields["toolmaster"]
                    assert info["termination"] == "answered" and info["counts"]["trial_calls"] == 1, info
                else:
                    assert out.num_turns == 2 * TURNS, out.num_turns
                samples[key].append((total - gen - tool) / TURNS)
                totals[key].append(total)
    ours_ms = statistics.median(samples["ours"]) * 1e3
    verl_ms = statistics.median(samples["verl"]) * 1e3
    return {"per_turn_overhead_ms": ours_ms, "tool_agent_loop_per_turn_overhead_ms": verl_ms,
            "overhead_ratio_vs_tool_agent_loop": ours_ms / verl_ms,
            "instantiate_ms": statistics.median(inits["ours"]) * 1e3,
            "tool_agent_loop_instantiate_ms": statistics.median(inits["verl"]) * 1e3,
            "trajectory_s_sequential": statistics.median(totals["ours"]), "trajectories_per_loop": len(samples["ours"])}


async def concurrent_run(h: Harness, ours: bool, n: int, latency: float) -> tuple[float, float, float]:
    """Start ``n`` trajectories at once (loops built beforehand); returns (elapsed s, worst busy loop iteration s,
    worst heartbeat lateness s)."""
    tools = verl_tools(latency)
    loops = [h.instantiate(ours, tools) for _ in range(n)]  # verl's per-trajectory instantiation, outside the window
    stop = asyncio.Event()
    worst = [0.0]

    async def heartbeat() -> None:
        period = 0.005
        while not stop.is_set():
            t = time.perf_counter()
            await asyncio.sleep(period)
            worst[0] = max(worst[0], time.perf_counter() - t - period)

    ev = asyncio.get_running_loop()
    beat = asyncio.create_task(heartbeat())
    await asyncio.sleep(0.05)
    ev.worst_busy, ev.measuring = 0.0, True
    t0 = time.perf_counter()
    results = await asyncio.gather(*(asyncio.create_task(h.trajectory(loop, ours, latency, i)) for i, loop in enumerate(loops)))
    elapsed = time.perf_counter() - t0
    ev.measuring = False
    stop.set()
    await beat
    for _, _, _, out in results:
        if ours:
            info = out.extra_fields["toolmaster"]
            assert info["termination"] == "answered" and [c["text"] for c in info["calls"]] == ["2", "5"], info
        else:
            assert out.num_turns == 2 * TURNS, out.num_turns
    return elapsed, ev.worst_busy, worst[0]


async def concurrency_part(h: Harness, n: int, latency: float, sequential_s: float, repeats: int) -> dict[str, Any]:
    cpu, tooled, stalls, lates = [], [], [], []
    for _ in range(repeats):  # alternate, best of `repeats`: the machine may be shared
        cpu.append((await concurrent_run(h, True, n, 0.0))[0])  # the same work with instant tools: pure CPU
        elapsed, stall, late = await concurrent_run(h, True, n, latency)
        tooled.append(elapsed)
        stalls.append(stall)
        lates.append(late)
    cpu_s, elapsed = min(cpu), min(tooled)
    verl_elapsed, verl_stall, verl_late = await concurrent_run(h, False, n, latency)
    tool_path = 2 * latency + sequential_s  # two tool rounds on top of one trajectory's own time
    ideal = max(cpu_s, tool_path)
    return {"concurrent_trajectories": n, "tool_latency_ms": latency * 1e3, "concurrent_elapsed_s": elapsed,
            "ideal_s": ideal, "ideal_cpu_s": cpu_s, "ideal_tool_path_s": tool_path,
            "concurrency_ratio_to_ideal": elapsed / ideal,
            "max_loop_stall_ms": max(stalls) * 1e3, "max_heartbeat_lateness_ms": max(lates) * 1e3,
            "tool_agent_loop_concurrent_elapsed_s": verl_elapsed, "tool_agent_loop_max_loop_stall_ms": verl_stall * 1e3,
            "tool_agent_loop_max_heartbeat_lateness_ms": verl_late * 1e3}


def measure(h: Harness, args: argparse.Namespace) -> dict[str, Any]:
    async def run() -> dict[str, Any]:
        over = await overhead_part(h, args.trajectories, args.block)
        if not args.no_gc_freeze:
            # The start-up heap (torch, transformers, verl, hydra configs: millions of objects) never becomes
            # garbage; left in the collector, every full collection walks it and stalls any asyncio loop for
            # 0.3-1 s whatever the agent loop does. A long-running rollout worker should freeze it likewise.
            from verl_toolmaster.loop_health import freeze_startup_heap

            freeze_startup_heap()  # what the plugin does after every AgentLoopWorker start-up
        conc = await concurrency_part(h, args.concurrent, args.latency_ms / 1e3, over["trajectory_s_sequential"], args.repeats)
        return {**over, **conc}

    loop = TimedLoop()
    try:
        figures = loop.run_until_complete(run())
    finally:
        loop.close()
    figures["load_average_1min"] = os.getloadavg()[0]  # the machine may be shared: context for the figures
    figures["gc_frozen"] = not args.no_gc_freeze
    return figures


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trajectories", type=int, default=200, help="sequential trajectories per loop for the overhead figure")
    ap.add_argument("--block", type=int, default=20, help="trajectories per alternating block")
    ap.add_argument("--concurrent", type=int, default=512)
    ap.add_argument("--latency-ms", type=float, default=50.0)
    ap.add_argument("--repeats", type=int, default=2, help="concurrent batches per setting (best time, worst stall)")
    ap.add_argument("--no-gc-freeze", action="store_true", help="leave the start-up heap to the cyclic collector (see measure())")
    ap.add_argument("--model-dir", default=None, help="tiny model dir (built offline into a temp dir if absent)")
    args = ap.parse_args(argv)

    import logging

    logging.getLogger("verl").setLevel(logging.ERROR)
    from transformers import AutoTokenizer

    from verl_toolmaster.tiny import build_tiny

    with tempfile.TemporaryDirectory(prefix="tm_bench_tiny_") as tmp:
        model_dir = args.model_dir or str(build_tiny(tmp))
        cfg = compose_config(model_dir, response_length=1024)
        h = Harness(cfg, AutoTokenizer.from_pretrained(model_dir))
        figures = measure(h, args)
    report(figures)
    return 0


def report(figures: dict[str, Any]) -> None:
    """Each figure on stderr, then the one JSON line on stdout (shared by the benchmarks)."""
    for k, v in figures.items():
        print(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}", file=sys.stderr)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    raise SystemExit(main())
