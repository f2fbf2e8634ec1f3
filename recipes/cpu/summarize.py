"""Print the CPU pipeline's before/after table from the evaluation outputs and stage times.

    python recipes/cpu/summarize.py OUT_DIR base sft grpo

Reads OUT_DIR/eval_<name>/metrics.json (written by ``python -m verl_toolmaster.eval``) and
OUT_DIR/pipeline_times.jsonl; prints a table, then one JSON object with the same numbers on the last line.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

COLUMNS = ("n", "answer", "score", "format", "trial_calls", "execute_calls", "self_corrections", "tool_error_rate")


def main(out: Path, names: list[str]) -> dict:
    rows = {}
    for name in names:
        path = out / f"eval_{name}" / "metrics.json"
        if not path.is_file():
            raise SystemExit(f"error: {path} is missing: the evaluation of {name!r} did not run")
        rows[name] = json.loads(path.read_text())["overall"]
    width = max(len(c) for c in COLUMNS)
    print(f"{'model':<8}" + "".join(f"{c:>{width + 2}}" for c in COLUMNS))
    for name, m in rows.items():
        cells = []
        for c in COLUMNS:
            v = m.get(c)
            cells.append(f"{v:>{width + 2}.3f}" if isinstance(v, float) else f"{str(v):>{width + 2}}")
        print(f"{name:<8}" + "".join(cells))
    times_file = out / "pipeline_times.jsonl"
    times = [json.loads(line) for line in times_file.read_text().splitlines()] if times_file.is_file() else []
    if times:
        print("stage wall times: " + ", ".join(f"{t['stage']} {t['seconds']:.0f}s" for t in times))
    summary = {"eval": {n: {c: rows[n].get(c) for c in COLUMNS} for n in rows},
               "stage_seconds": {t["stage"]: t["seconds"] for t in times}}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    main(Path(sys.argv[1]), sys.argv[2:])
