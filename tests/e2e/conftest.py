"""Helpers for the slow CPU end-to-end runs of verl's trainers."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_METRIC = re.compile(r"(?:^| - )([A-Za-z_][\w/@.\-]*):(np\.\w+\()?(-?[0-9.]+(?:e[-+]?[0-9]+)?|nan|inf)\)?")


def parse_steps(log: str) -> dict[int, dict[str, float]]:
    """verl's console logger lines ``step:N - key:value - ...`` -> {N: {key: value}} (last print of a step wins)."""
    steps: dict[int, dict[str, float]] = {}
    for line in log.splitlines():
        m = re.search(r"step:(\d+) - (.*)$", line)
        if not m:
            continue
        metrics = {k: float(v) for k, _, v in _METRIC.findall(" - " + m.group(2))}
        steps.setdefault(int(m.group(1)), {}).update(metrics)
    return steps


def run_script(script: str, out_dir: Path, *overrides: str, env: dict[str, str] | None = None,
               timeout: int = 1500) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update({"TOOLMASTER_OUT": str(out_dir)}, **(env or {}))
    return subprocess.run(["bash", str(REPO / script), *overrides], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
