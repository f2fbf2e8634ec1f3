"""Print the CPU main job's table: held-out results per dataset and stage, then one JSON object on the last line.

    python recipes/cpu/summarize.py OUT_DIR MODEL_NAME

Reads OUT_DIR/eval/<dataset>_<stage>/metrics.json (written by ``python -m verl_toolmaster.eval``) for every dataset
and stage that ran (stages base, sft, grpo) and OUT_DIR/pipeline_times.jsonl. The JSON object:
``{"model": ..., "eval": {dataset: {stage: {metric: value}}}, "by_level": {"toyworld": {stage: {level: answer}}},
"stage_seconds": {...}, "total_seconds": ...}``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

STAGES = ("base", "sft", "grpo")
# answer = task success; score/format/trial/cost = the toolmaster reward and its components (docs/reward.md)
COLUMNS = ("n", "answer", "score", "format", "trial", "cost", "trial_calls", "execute_calls", "self_corrections",
           "tool_error_rate", "turns")


def _toyworld_levels(trajectories: Path) -> dict[str, float]:
    """Mean answer per ToyWorld difficulty level (the scorer's ``toyworld/level``); {} for other data sources."""
    hits: dict[str, list[float]] = {}
    for line in trajectories.read_text().splitlines() if trajectories.is_file() else []:
        reward = json.loads(line).get("reward") or {}
        if reward.get("toyworld/level") is not None and reward.get("answer") is not None:
            hits.setdefault(str(int(reward["toyworld/level"])), []).append(float(reward["answer"]))
    return {lv: round(sum(v) / len(v), 4) for lv, v in sorted(hits.items())}


def collect(out: Path) -> tuple[dict, dict]:
    """({dataset: {stage: overall metrics}}, {dataset: {stage: {level: answer}}}) of every evaluation found."""
    results: dict[str, dict[str, dict]] = {}
    levels: dict[str, dict[str, dict]] = {}
    for path in sorted((out / "eval").glob("*/metrics.json")):
        dataset, _, stage = path.parent.name.rpartition("_")
        if stage not in STAGES or not dataset:
            continue
        metrics = json.loads(path.read_text())
        if not metrics.get("overall", {}).get("complete", True):
            raise SystemExit(f"error: {path}: the evaluation did not finish (pending rows); rerun the pipeline")
        results.setdefault(dataset, {})[stage] = {c: metrics["overall"].get(c) for c in COLUMNS}
        by_level = _toyworld_levels(path.parent / "trajectories.jsonl")
        if by_level:
            levels.setdefault(dataset, {})[stage] = by_level
    return results, levels


def main(out: Path, model: str) -> dict:
    results, levels = collect(out)
    if not results:
        raise SystemExit(f"error: no evaluation under {out}/eval: the pipeline's evaluation stages did not run")
    results = dict(sorted(results.items(), key=lambda kv: kv[0] != "toyworld"))  # the trained-on world first
    for dataset, stages in results.items():
        print(f"\n{dataset} (held-out rows)")
        print(f"{'stage':<6}" + "".join(f"{c:>{len(c) + 2}}" for c in COLUMNS))
        for stage in STAGES:
            if stage in stages:
                cells = [f"{v:>{len(c) + 2}.3f}" if isinstance(v, float) else f"{str(v):>{len(c) + 2}}"
                         for c, v in stages[stage].items()]
                print(f"{stage:<6}" + "".join(cells))
        if dataset in levels:
            for stage, by in levels[dataset].items():
                print(f"  answer by level ({stage}): " + ", ".join(f"L{lv} {v:.3f}" for lv, v in by.items() if v is not None))
    times_file = out / "pipeline_times.jsonl"
    times = [json.loads(line) for line in times_file.read_text().splitlines()] if times_file.is_file() else []
    if times:
        print("\nstage wall times: " + ", ".join(f"{t['stage']} {t['seconds']:.0f}s" for t in times))
    stage_seconds = {t["stage"]: t["seconds"] for t in times}  # a stage rerun (FROM=...) keeps its last time
    summary = {"model": model, "eval": results, "by_level": levels, "stage_seconds": stage_seconds,
               "total_seconds": round(sum(stage_seconds.values()), 1)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2])
