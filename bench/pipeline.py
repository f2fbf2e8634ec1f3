"""Wall time per stage of the CPU pipeline and where a GRPO step's time goes.

    python bench/pipeline.py                 # runs bash recipes/cpu/run_pipeline.sh in a fresh output dir
    python bench/pipeline.py --from OUT_DIR  # reads a finished pipeline's outputs instead

Stage times come from OUT_DIR/pipeline_times.jsonl; the GRPO step breakdown from the step metrics verl printed
(OUT_DIR/grpo.log), averaged over the steps: rollout = timing_s/gen (generation, tool calls and in-loop reward
scoring, overlapping), update = old_log_prob + ref + update_actor + update_weights, tools = summed tool-call time
of the step's trajectories (toolmaster/tool_seconds/sum; trajectories run concurrently, so this share can overlap
generation), reward = summed scoring time (reward/scoring_seconds/mean x trajectories). Shares are of
timing_s/step. Last line: one JSON object of these figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
from pathlib import Path

from verl_toolmaster.verl_logs import parse_steps

REPO = Path(__file__).resolve().parents[1]

UPDATE_KEYS = ("timing_s/old_log_prob", "timing_s/ref", "timing_s/update_actor", "timing_s/update_weights")


def step_breakdown(log: str) -> dict[str, float]:
    steps = parse_steps(log)
    if not steps:
        raise SystemExit("no GRPO step metrics found in the log")

    def mean(fn) -> float:
        return statistics.mean(fn(m) for m in steps.values())

    step_s = mean(lambda m: m["timing_s/step"])
    rollout_s = mean(lambda m: m["timing_s/gen"])
    update_s = mean(lambda m: sum(m.get(k, 0.0) for k in UPDATE_KEYS))
    tools_s = mean(lambda m: m.get("toolmaster/tool_seconds/sum", 0.0))
    reward_s = mean(lambda m: m.get("reward/scoring_seconds/mean", 0.0) * m.get("toolmaster/trajectories", 0.0))
    return {
        "grpo_steps": len(steps),
        "grpo_step_s": round(step_s, 3),
        "share_rollout": round(rollout_s / step_s, 4),
        "share_tools": round(tools_s / step_s, 4),
        "share_reward": round(reward_s / step_s, 4),
        "share_update": round(update_s / step_s, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--from", dest="source", type=Path, help="a finished pipeline's TOOLMASTER_OUT")
    args = ap.parse_args()
    out = args.source
    if out is None:
        out = Path(tempfile.mkdtemp(prefix="toolmaster_pipeline_"))
        env = {**os.environ, "TOOLMASTER_OUT": str(out)}
        proc = subprocess.run(["bash", str(REPO / "recipes/cpu/run_pipeline.sh")], env=env)
        if proc.returncode != 0:
            raise SystemExit(f"the pipeline failed (exit {proc.returncode}); outputs in {out}")
    times = [json.loads(line) for line in (out / "pipeline_times.jsonl").read_text().splitlines()]
    figures: dict[str, float] = {f"stage_{t['stage']}_s": t["seconds"] for t in times}
    figures["pipeline_total_s"] = round(sum(t["seconds"] for t in times), 1)
    figures.update(step_breakdown((out / "grpo.log").read_text()))
    for key, value in figures.items():
        print(f"{key:>28}: {value}")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
