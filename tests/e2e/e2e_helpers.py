"""Helpers for the slow CPU end-to-end runs of verl's trainers."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from verl_toolmaster.verl_logs import parse_steps  # noqa: F401  (re-exported for the tests)

REPO = Path(__file__).resolve().parents[2]


def run_script(script: str, out_dir: Path, *overrides: str, env: dict[str, str] | None = None,
               timeout: int = 1500) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update({"TOOLMASTER_OUT": str(out_dir)}, **(env or {}))
    return subprocess.run(["bash", str(REPO / script), *overrides], capture_output=True, text=True, env=full_env,
                          timeout=timeout)
