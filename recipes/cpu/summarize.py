"""Print the CPU main job's table: held-out results per dataset and stage, then one JSON object on the last line.

    python recipes/cpu/summarize.py OUT_DIR MODEL_NAME

Reads OUT_DIR/eval/<dataset>_<stage>/metrics.json (written by ``python -m verl_toolmaster.eval``) for every dataset
and stage that ran (stages base, sft, grpo) and OUT_DIR/pipeline_times.jsonl. The JSON object:
``{"model": ..., "eval": {dataset: {stage: {metric: value}}}, "by_level": {dataset: {stage: {level: answer}}},
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
        by_level = metrics.get("by_level") or {}
        if by_level:
            levels.setdefault(dataset, {})[stage] = {str(lv): m.get("answer") for lv, m in sorted(by_level.items())}
    return results, levels


def main(out: Path, model: str) -> dict:
    results, levels = collect(out)
    if not results:
        raise SystemExit(f"error: no evaluation under {out}/eval: the pipeline's evaluation stages did not run")
    width = max(len(c) for c in COLUMNS) + 2
    for dataset, stages in results.items():
        print(f"\n{dataset} (held-out rows)")
        print(f"{'stage':<8}" + "".join(f"{c:>{width}}" for c in COLUMNS))
        for stage in STAGES:
            if stage in stages:
                cells = [f"{v:>{width}.3f}" if isinstance(v, float) else f"{str(v):>{width}}" for v in stages[stage].values()]
                print(f"{stage:<8}" + "".join(cells))
        if dataset in levels:
            for stage, by in levels[dataset].items():
                print(f"  answer by level ({stage}): " + ", ".join(f"L{lv} {v:.3f}" for lv, v in by.items() if v is not None))
    times_file = out / "pipeline_times.jsonl"
    times = [json.loads(line) for line in times_file.read_text().splitlines()] if times_file.is_file() else []
    if times:
        print("\nstage wall times: " + ", ".join(f"{t['stage']} {t['seconds']:.0f}s" for t in times))
    summary = {"model": model, "eval": results, "by_level": levels,
               "stage_seconds": {t["stage"]: t["seconds"] for t in times},
               "total_seconds": round(sum(t["seconds"] for t in times), 1)}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2])
