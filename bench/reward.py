"""Rule-scored trajectories per second: ToolMasterRewardManager vs verl's naive manager, same batch, same run.

    python bench/reward.py [--n 512] [--repeats 5] [--data DIR]

Both managers run inside verl's ``RewardLoopWorker`` built from the real composed ``ppo_trainer`` config and
score the same ``DataProto`` (scripted protocol trajectories over the shared benchmark rows: ToolHop, API-Bank,
ToolRL, RoTBench, BFCL single- and multi-turn, StableToolBench proxy). The naive manager gets the cheapest
sensible custom rule (:func:`naive_rule_score`: last ``<answer>`` vs the gold answer string), so the ratio
measures what our manager costs on top of verl's own per-sample reward path. Timings alternate between the two
managers; rates are medians over ``--repeats`` passes and the ratio is the median of the per-pass ratios
(robust to load changes on a shared machine). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def naive_rule_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs) -> float:
    """Baseline rule for the naive manager: the last <answer>...</answer> equals the gold "answer" (if any)."""
    found = re.findall(r"<answer>(.*?)</answer>", solution_str, re.S)
    gold = json.loads(ground_truth).get("answer", "")
    return float(bool(found) and found[-1].strip().lower() == str(gold).strip().lower())


def _cycle(items: list, n: int) -> list:
    return [items[i % len(items)] for i in range(n)]


def build_samples(data: Path, tokenizer, n: int, multi_every: int = 16) -> list[dict]:
    from verl_toolmaster.data import get_adapter
    from verl_toolmaster.reward.scripted import Step, build_trajectory

    def load(name: str, rel: str):
        adapter = get_adapter(name)()
        out = []
        for record in adapter.records(data / rel):
            try:
                out.append(adapter.convert(record))
            except Exception:  # adapter-level skips are not this benchmark's business
                continue
        return out

    obs = "result: " + "lorem ipsum dolor sit amet " * 8  # ~60 tokens of observation per call
    pools = {
        "toolhop": load("toolhop", "toolhop/toolhop_dev10.jsonl"),
        "apibank": load("apibank", "apibank/level-1-api_processed.json")[:40],
        "toolrl": load("toolrl", "toolrl/rlla_4k_test.parquet")[:40],
        "rotbench": load("rotbench", "rotbench"),
        "bfcl": load("bfcl", "bfcl"),
        "stabletoolbench": load("stabletoolbench", "stabletoolbench/G1_instruction_dev.json"),
    }
    templates: list[tuple] = []  # (task, steps) per source, interleaved below
    for t in pools["toolhop"]:
        steps = [
            Step("trial", "what does the first tool return", [{"name": "lookup", "arguments": {"q": "x"}, "ok": False, "text": "TypeError: missing q2"}]),
            Step("execute", "look it up", [{"name": "lookup", "arguments": {"q": "x", "q2": 1}, "text": obs}]),
            Step("execute", "next hop", [{"name": "compute", "arguments": {"v": 3}, "text": obs}]),
            Step("answer", t.ground_truth["answer"]),
        ]
        templates.append((t, steps))
    for name in ("apibank", "toolrl", "rotbench", "bfcl"):
        for t in pools[name]:
            if not t.gold or t.source == "bfcl_multi":
                continue
            calls = [dict(c, text=obs) for step in t.gold[0] for c in step]
            templates.append((t, [Step("trial", "probe", calls[:1]), Step("execute", "call", calls), Step("answer", "done")]))
    for t in pools["stabletoolbench"]:
        by_api = {(e["source_tool_name"], e["source_api_name"]): k for k, e in t.env["api_map"].items()}
        calls = [{"name": by_api[tuple(p)], "arguments": {}, "text": obs} for p in t.ground_truth["relevant_apis"]]
        templates.append((t, [Step("execute", "call", calls), Step("answer", "Here is what I found.")]))
    by_source: dict[str, list] = {}
    for t, steps in templates:
        by_source.setdefault(t.source, []).append((t, steps))
    templates = [pair for group in zip(*(_cycle(v, max(map(len, by_source.values()))) for v in by_source.values())) for pair in group]
    multi = [t for t in pools["bfcl"] if t.source == "bfcl_multi"]

    samples = []
    for i in range(n):
        if multi_every and i % multi_every == multi_every - 1 and multi:  # BFCL multi-turn episodes, re-executed
            t = multi[i % len(multi)]
            traj = build_trajectory(tokenizer, [Step("execute", "go", [c for step in t.gold[0] for c in step]), Step("answer", "done")])
            traj.record["calls"] = [
                {"phase": "execute", "turn": u, "name": c["name"], "arguments": c["arguments"], "ok": True, "error_kind": None, "text": "", "latency_s": 0.0}
                for u, steps in enumerate(t.gold) for step in steps for c in step
            ]
            traj.record["answers"] = ["done"] * len(t.gold)
        else:
            t, steps = templates[i % len(templates)]
            traj = build_trajectory(tokenizer, steps)
        samples.append({"traj": traj, "source": t.source, "gt": t.ground_truth, "env": t.env if t.source == "stabletoolbench" else None})
    return samples


def compose(model_dir: str, overrides: list[str]):
    import verl
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from verl_toolmaster import compat

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=os.path.join(os.path.dirname(verl.__file__), "trainer", "config"), version_base=None):
        cfg = hydra_compose(
            "ppo_trainer", overrides=[f"actor_rollout_ref.model.path={model_dir}", "actor_rollout_ref.rollout.name=vllm", "reward.num_workers=1", *overrides]
        )
    GlobalHydra.instance().clear()
    return compat.migrate_legacy_reward_impl(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=512, help="trajectories in the batch")
    parser.add_argument("--repeats", type=int, default=7, help="timed passes per manager (median reported)")
    parser.add_argument("--multi-every", type=int, default=16, help="every k-th trajectory is BFCL multi-turn (0: none)")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("TOOLMASTER_SHARED_DATA", REPO / "data_prep" / "samples")))
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from verl_toolmaster import compat
    from verl_toolmaster.reward import register_with_verl
    from verl_toolmaster.reward.scripted import make_batch
    from verl_toolmaster.tiny import build_tiny

    register_with_verl()
    model_dir = str(build_tiny(Path(tempfile.mkdtemp(prefix="bench_reward_"))))
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    samples = build_samples(args.data, tokenizer, args.n, args.multi_every)
    batch = make_batch(tokenizer, samples)
    tokens = [len(s["traj"].response_ids) for s in samples]

    ours_cfg = compose(model_dir, ["reward.reward_manager.source=register", "reward.reward_manager.name=toolmaster"])
    naive_cfg = compose(
        model_dir,
        ["reward.reward_manager.name=naive", f"reward.custom_reward_function.path={Path(__file__).resolve()}", "reward.custom_reward_function.name=naive_rule_score"],
    )

    async def run():
        workers = {"toolmaster": compat.RewardLoopWorker(ours_cfg), "naive": compat.RewardLoopWorker(naive_cfg)}
        times: dict[str, list[float]] = {k: [] for k in workers}
        outputs = {}
        for name, worker in workers.items():  # warm-up (imports, bfcl-eval loading, thread pool)
            outputs[name] = await worker.compute_score_batch(batch)
        for _ in range(args.repeats):
            for name, worker in workers.items():
                t0 = time.perf_counter()
                await worker.compute_score_batch(batch)
                times[name].append(time.perf_counter() - t0)
        return times, outputs

    times, outputs = asyncio.run(run())
    rate = {k: args.n / statistics.median(v) for k, v in times.items()}
    # each repeat times both managers back to back; the median of those paired ratios is robust to load drift
    ratio = statistics.median(n_t / o_t for n_t, o_t in zip(times["naive"], times["toolmaster"]))
    ours = outputs["toolmaster"]
    reasons: dict[str, int] = {}
    for r in ours:
        reasons[r["reward_extra_info"]["reason"]] = reasons.get(r["reward_extra_info"]["reason"], 0) + 1
    for name in ("naive", "toolmaster"):
        print(f"{name:>10}: {rate[name]:8.1f} trajectories/s (median of {args.repeats}, batch {args.n})", file=sys.stderr)
    print(f"toolmaster reasons: {reasons}", file=sys.stderr)
    print(
        json.dumps(
            {
                "n_trajectories": args.n,
                "bfcl_multi_every": args.multi_every,
                "mean_response_tokens": round(statistics.mean(tokens), 1),
                "sources": sorted({s["source"] for s in samples}),
                "naive_traj_per_s": round(rate["naive"], 1),
                "toolmaster_traj_per_s": round(rate["toolmaster"], 1),
                "throughput_ratio_vs_naive": round(ratio, 3),
                "toolmaster_mean_score": round(statistics.mean(r["reward_score"] for r in ours), 4),
                "toolmaster_scorer_errors": sum(int(r["reward_extra_info"]["scorer_error"]) for r in ours),
            }
        )
    )


if __name__ == "__main__":
    main()
