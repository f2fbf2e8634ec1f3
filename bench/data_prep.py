"""Data-preparation throughput: ``python bench/data_prep.py``.

Runs ``data_prep/prepare.py`` end to end (fresh interpreter, as a user would) on
* ToolHop: the shipped dev slice replicated with new ids to ``--toolhop-rows`` rows (the format's cost per row);
* BFCL sample: the shipped ``data_prep/samples/bfcl`` folder;
* BFCL full: the installed bfcl-eval package's data, all categories the adapter converts.
Each case runs ``--repeats`` times; the median wall time is reported. The last line is one JSON object with
``toolhop_rows_per_s``, ``bfcl_rows_per_s`` (full data) and ``bfcl_full_seconds`` (target < 60).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PREPARE = REPO / "data_prep" / "prepare.py"


def shared_data() -> Path:
    env = os.environ.get("TOOLMASTER_SHARED_DATA")
    return Path(env) if env else REPO / "data_prep" / "samples"


def run_case(argv: list[str], repeats: int) -> tuple[float, dict]:
    times, last = [], {}
    for _ in range(repeats):
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(PREPARE), *argv, "--no-progress"], capture_output=True, text=True)
        times.append(time.perf_counter() - t0)
        if proc.returncode != 0:
            raise SystemExit(f"prepare.py {' '.join(argv)} failed ({proc.returncode}):\n{proc.stderr}")
        last = json.loads(proc.stdout.strip().splitlines()[-1])
    return statistics.median(times), last


def replicate_toolhop(src: Path, dst: Path, rows: int) -> int:
    lines = [json.loads(x) for x in src.read_text().splitlines() if x.strip()]
    with dst.open("w") as f:
        for k in range(rows):
            d = dict(lines[k % len(lines)])
            d["id"] = f"{d['id']}-r{k}"
            f.write(json.dumps(d) + "\n")
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="runs per case; the median is reported (default 3)")
    p.add_argument("--toolhop-rows", type=int, default=2000, help="rows of the replicated ToolHop file (default 2000)")
    args = p.parse_args()
    data = shared_data()
    figures: dict[str, float | int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = replicate_toolhop(data / "toolhop" / "toolhop_dev10.jsonl", tmp / "toolhop.jsonl", args.toolhop_rows)
        secs, last = run_case(["--dataset", "toolhop", "--input", str(tmp / "toolhop.jsonl"), "--output", str(tmp / "th.parquet")], args.repeats)
        assert last["written"] == n, last
        figures.update(toolhop_rows=n, toolhop_seconds=round(secs, 3), toolhop_rows_per_s=round(n / secs, 1))
        print(f"toolhop x{n}: {secs:.2f} s", flush=True)

        secs, last = run_case(["--dataset", "bfcl", "--input", str(data / "bfcl"), "--output", str(tmp / "bs.parquet")], args.repeats)
        figures.update(bfcl_sample_rows=last["written"], bfcl_sample_seconds=round(secs, 3), bfcl_sample_rows_per_s=round(last["written"] / secs, 1))
        print(f"bfcl sample ({last['written']} rows): {secs:.2f} s", flush=True)

        secs, last = run_case(["--dataset", "bfcl", "--output", str(tmp / "bf.parquet")], args.repeats)
        figures.update(bfcl_full_rows=last["written"], bfcl_full_seconds=round(secs, 3), bfcl_rows_per_s=round(last["written"] / secs, 1))
        print(f"bfcl full ({last['written']} rows, bfcl-eval package data): {secs:.2f} s", flush=True)
    figures["repeats"] = args.repeats
    figures["cpu_count"] = os.cpu_count() or 0
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
