"""What our plugin adds to ``import verl``, measured side by side in one run.

Fresh interpreters alternate between ``import verl`` with the plugin (default) and without it
(``VERL_USE_EXTERNAL_PLUGINS=<another name>``: verl still scans the entry points, as it does for any user, but
skips ours); the overhead is the median over alternating pairs of with/without - 1 (target < 0.05), which is
robust to load drifting during the run. A second figure times our plugin module directly inside one interpreter
(verl imported first with plugins off), as a share of that interpreter's ``import verl``.
With ``--smoke`` it also runs the CPU GRPO recipe once and reports its startup and per-step wall times.

    python bench/plugin_import.py [--reps 15] [--smoke]

Last line: one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = "import time, sys; t = time.perf_counter(); import verl; print(time.perf_counter() - t); " \
        "print('verl_toolmaster.plugin' in sys.modules)"


def time_import(plugins: bool) -> tuple[float, bool]:
    env = dict(os.environ)
    env.pop("VERL_PLATFORM", None)
    env["VERL_USE_EXTERNAL_PLUGINS"] = "auto" if plugins else "not-verl-toolmaster"
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    seconds, loaded = out.stdout.split()
    return float(seconds), loaded == "True"


INPROCESS = (
    "import time, importlib; t = time.perf_counter(); import verl; base = time.perf_counter() - t; "
    "t = time.perf_counter(); importlib.import_module('verl_toolmaster.plugin'); "
    "print(base, time.perf_counter() - t)"
)


def time_plugin_in_process() -> tuple[float, float]:
    env = dict(os.environ)
    env.pop("VERL_PLATFORM", None)
    env["VERL_USE_EXTERNAL_PLUGINS"] = "none"
    out = subprocess.run([sys.executable, "-c", INPROCESS], env=env, capture_output=True, text=True, check=True)
    base, plugin = out.stdout.split()
    return float(base), float(plugin)


def smoke_times() -> dict[str, float]:
    """Run the CPU GRPO recipe; startup = wall time until step 1 starts, per-step = mean of timing_s/step."""
    t0 = time.perf_counter()
    proc = subprocess.run(["bash", str(REPO / "recipes/cpu/run_grpo_tiny.sh")], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"CPU smoke failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    steps = [float(x) for x in re.findall(r"timing_s/step:([0-9.]+)", proc.stdout + proc.stderr)]
    steps = list(dict.fromkeys(steps))  # verl prints the last step twice
    return {"smoke_wall_s": round(wall, 2), "smoke_steps": len(steps),
            "smoke_step_mean_s": round(statistics.mean(steps), 3),
            "smoke_startup_s": round(wall - sum(steps), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=15, help="imports per arm (alternating)")
    ap.add_argument("--smoke", action="store_true", help="also time the CPU GRPO recipe (minutes)")
    args = ap.parse_args()
    time_import(True), time_import(False)  # warm the OS file cache for both arms
    with_p, without_p = [], []
    for _ in range(args.reps):
        s, loaded = time_import(True)
        assert loaded, "the plugin did not load on `import verl`"
        with_p.append(s)
        s, loaded = time_import(False)
        assert not loaded
        without_p.append(s)
    med_with, med_without = statistics.median(with_p), statistics.median(without_p)
    pair_ratios = [w / wo for w, wo in zip(with_p, without_p)]
    direct = [time_plugin_in_process() for _ in range(3)]
    figures = {
        "import_verl_with_plugin_s": round(med_with, 4),
        "import_verl_without_plugin_s": round(med_without, 4),
        "plugin_import_overhead": round(statistics.median(pair_ratios) - 1, 4),
        "plugin_module_import_ms": round(1000 * statistics.median(p for _, p in direct), 2),
        "plugin_import_overhead_in_process": round(statistics.median(p / b for b, p in direct), 5),
        "reps": args.reps,
    }
    print(f"import verl: {med_with:.3f}s with plugin, {med_without:.3f}s without (median of {args.reps})")
    if args.smoke:
        figures.update(smoke_times())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
