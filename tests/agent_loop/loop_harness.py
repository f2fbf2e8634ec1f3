"""Test harness: drive verl's AgentLoopWorker in-process (no Ray) with a scripted LLM server and a test-only
stateful environment (registered as kind "tm_test_counter")."""

from __future__ import annotations

import asyncio
import copy
import json
import re
from typing import Any

import numpy as np
from omegaconf import OmegaConf, open_dict

from verl_toolmaster.envs import Observation, ToolEnv, register_env
from verl_toolmaster.protocol import phase_spans, span_problems, system_prompt, turn_text

EOS = "<|im_end|>"


def T(phase: str, body: str, *calls: tuple[str, Any]) -> str:
    """A canonical protocol turn as the policy would sample it."""
    return turn_text(phase, body, [{"name": n, "arguments": a} for n, a in calls]) + EOS


def _schema(name: str, props: dict[str, str] | None = None, desc: str = "") -> dict[str, Any]:
    props = props or {}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": desc or f"the {name} tool",
            "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in props.items()}, "required": list(props)},
        },
    }


@register_env("tm_test_counter")
class CounterEnv(ToolEnv):
    """A stateful test environment: a counter plus tools that misbehave on purpose.

    Spec options: "latency" (seconds per call), "turn_tools" ({"<k>": [names revealed at user turn k]}),
    "rename" ({surface name: real name}, exercising canonical()), "fork_fails" (fork() raises).
    """

    created: list["CounterEnv"] = []
    BASE = ["incr", "get", "fail", "big", "slow", "boom"]
    EXTRA = ["reset"]

    def __init__(self, spec: dict[str, Any], value: int = 0, is_fork: bool = False):
        super().__init__(spec)
        self.value = value
        self.is_fork = is_fork
        self.closed = False
        self.calls: list[tuple[str, Any]] = []
        CounterEnv.created.append(self)

    def _visible(self) -> list[str]:
        names = list(self.BASE)
        for k, extra in (self.spec.get("turn_tools") or {}).items():
            if int(k) <= self.turn:
                names += extra
        return names

    def _surface(self, real: str) -> str:
        for surface, r in (self.spec.get("rename") or {}).items():
            if r == real:
                return surface
        return real

    def tools(self) -> list[dict[str, Any]]:
        props = {"incr": {"by": "integer"}, "big": {"n": "integer"}, "slow": {"s": "number"}}
        return [_schema(self._surface(n), props.get(n)) for n in self._visible()]

    def canonical(self, name: str, arguments: Any) -> tuple[str, Any]:
        return (self.spec.get("rename") or {}).get(name, name), arguments

    async def call(self, name: str, arguments: Any) -> Observation:
        real, args = self.canonical(name, arguments)
        self.calls.append((real, args))
        if self.spec.get("latency"):
            await asyncio.sleep(self.spec["latency"])
        if real not in self._visible():
            return Observation(False, f"Error: unknown tool {name!r}", "unknown_tool")
        if real == "incr":
            if not isinstance(args.get("by"), int):
                return Observation(False, "Error: 'by' must be an integer", "schema")
            self.value += args["by"]
            return Observation(True, str(self.value))
        if real == "get":
            return Observation(True, str(self.value))
        if real == "reset":
            self.value = 0
            return Observation(True, "0")
        if real == "fail":
            return Observation(False, "Error: fail always fails", "exception")
        if real == "big":
            return Observation(True, "x" * int(args.get("n", 0)))
        if real == "slow":
            await asyncio.sleep(float(args.get("s", 0)))
            return Observation(True, "slept")
        raise RuntimeError("boom raised inside the environment")

    def fork(self) -> "CounterEnv":
        if self.spec.get("fork_fails"):
            raise RuntimeError("this environment cannot be copied")
        env = CounterEnv(self.spec, self.value, is_fork=True)
        env.turn = self.turn
        return env

    async def close(self) -> None:
        self.closed = True


SCRIPT_RE = re.compile(r"SCRIPT=(\w+)")


class ScriptedServer:
    """Stands in for verl's LLMServerClient. The user query names a script ("SCRIPT=<key>"); each generate
    call of that trajectory returns the next turn: a text (encoded with the real tokenizer), a list of ids,
    or a callable(prompt_text) -> text."""

    def __init__(self, tokenizer: Any, scripts: dict[str, list[Any]]):
        self.tokenizer = tokenizer
        self.scripts = scripts
        self.state: dict[str, tuple[str, int]] = {}
        self.sampled: dict[str, list[list[int]]] = {}  # script key -> ids returned per turn
        self.prompts: dict[str, list[str]] = {}  # script key -> decoded prompt per turn
        self.params: dict[str, list[dict]] = {}

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any):
        from verl_toolmaster.compat import TokenOutput

        text = self.tokenizer.decode(prompt_ids, skip_special_tokens=False)
        if request_id not in self.state:
            self.state[request_id] = (SCRIPT_RE.search(text).group(1), 0)
        key, i = self.state[request_id]
        self.state[request_id] = (key, i + 1)
        script = self.scripts[key]
        turn = script[i] if i < len(script) else "<answer>script exhausted</answer><|im_end|>"
        if callable(turn):
            turn = turn(text)
        ids = list(turn) if isinstance(turn, list) else self.tokenizer.encode(turn, add_special_tokens=False)
        if sampling_params.get("max_tokens") is not None:
            ids = ids[: sampling_params["max_tokens"]]
        self.sampled.setdefault(key, []).append(ids)
        self.prompts.setdefault(key, []).append(text)
        self.params.setdefault(key, []).append(dict(sampling_params))
        return TokenOutput(token_ids=ids, log_probs=[-0.5] * len(ids), extra_fields={"min_global_steps": 1, "max_global_steps": 1})


class Proxy:
    target: Any = None

    async def generate(self, *args: Any, **kwargs: Any):
        return await self.target.generate(*args, **kwargs)


def make_config(base, *, response_length: int | None = None, multi_turn: dict | None = None, custom: dict | None = None):
    cfg = copy.deepcopy(base)
    with open_dict(cfg):
        if response_length is not None:
            cfg.actor_rollout_ref.rollout.response_length = response_length
            cfg.data.max_response_length = response_length
        for k, v in (multi_turn or {}).items():
            cfg.actor_rollout_ref.rollout.multi_turn[k] = v
        if custom is not None:
            cfg.actor_rollout_ref.rollout.custom = OmegaConf.create({"toolmaster": custom})
    return cfg


def row(script: str, spec: dict | None = None, *, follow_up: list[str] | None = None, trial_mode: str = "on",
        agent_name: str = "toolmaster_agent", index: int = 0, query: str = "count for me") -> dict[str, Any]:
    spec = spec if spec is not None else {"kind": "tm_test_counter"}
    return {
        "raw_prompt": [{"role": "system", "content": system_prompt(trial_mode)}, {"role": "user", "content": f"SCRIPT={script} {query}"}],
        "agent_name": agent_name,
        "extra_info": {"index": index, "env": json.dumps(spec), "follow_up": json.dumps(follow_up or [])},
        "index": index,
        "data_source": "test",
        "reward_model": {"style": "rule", "ground_truth": "{}"},
    }


class Run:
    """Result of one generate_sequences call, with per-sample accessors."""

    def __init__(self, out: Any, server: ScriptedServer, tokenizer: Any, rows: list[dict]):
        self.out, self.server, self.tokenizer, self.rows = out, server, tokenizer, rows

    def info(self, i: int = 0) -> dict[str, Any]:
        return self.out.non_tensor_batch["toolmaster"][i]

    def response(self, i: int = 0) -> tuple[list[int], list[int]]:
        mask = self.out.batch["response_mask"][i].tolist()
        ids = self.out.batch["responses"][i].tolist()
        n = int(self.out.batch["attention_mask"][i, self.out.batch["prompts"].shape[1]:].sum())
        return ids[:n], mask[:n]

    def text(self, i: int = 0) -> str:
        return self.tokenizer.decode(self.response(i)[0], skip_special_tokens=False)


def run_rows(cfg, rows: list[dict], scripts: dict[str, list[Any]], registry_extra: dict[str, dict] | None = None) -> Run:
    from verl import DataProto

    from verl_toolmaster.compat import AgentLoopWorker, agent_loop_registry
    from verl_toolmaster.registration import register_agent_loop

    register_agent_loop()
    for name, entry in (registry_extra or {}).items():
        agent_loop_registry[name] = entry
    proxy = Proxy()
    worker = AgentLoopWorker(cfg, llm_client=proxy)
    server = ScriptedServer(worker.tokenizer, scripts)
    proxy.target = server
    n = len(rows)
    cols = {}
    for key in rows[0]:
        arr = np.empty(n, dtype=object)
        arr[:] = [r[key] for r in rows]
        cols[key] = arr
    batch = DataProto.from_dict(tensors={"dummy": __import__("torch").zeros(n, 1)}, non_tensors=cols,
                                meta_info={"global_steps": 1, "validate": False})
    out = asyncio.run(worker.generate_sequences(batch))
    return Run(out, server, worker.tokenizer, rows)


def assert_token_invariants(run, i, key, trial_mode="on"):
    """Mask 1 exactly on the tokens the server sampled, in order; phase spans cover the response exactly."""
    ids, mask = run.response(i)
    info = run.info(i)
    sampled_runs, pos = [], 0
    while pos < len(mask):
        end = pos
        while end < len(mask) and mask[end] == mask[pos]:
            end += 1
        if mask[pos] == 1:
            sampled_runs.append(ids[pos:end])
        pos = end
    expected = [s for s in run.server.sampled[key] if s][: len(sampled_runs)]
    if sampled_runs and len(sampled_runs[-1]) < len(expected[-1]):  # the last turn was cut by response_length
        assert sum(mask) + mask.count(0) == len(mask) and len(ids) == run.out.batch["responses"].shape[1]
        expected[-1] = expected[-1][: len(sampled_runs[-1])]
    assert sampled_runs == expected
    assert span_problems(info["phase_spans"], mask) == []
    assert info["phase_spans"] == phase_spans(ids, mask, run.tokenizer, trial_mode=trial_mode)
