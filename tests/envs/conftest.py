"""Fixtures for the environment tests: ToolHop rows as python-env specs, a tightly limited sandbox pool."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from verl_toolmaster.envs.sandbox_pool import SandboxConfig, SandboxLimits, SandboxPool


@pytest.fixture(scope="session")
def toolhop_rows(shared_data: Path) -> list[dict[str, Any]]:
    path = shared_data / "toolhop" / "toolhop_dev10.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert len(rows) == 10, f"{path}: expected the 10 dev items, found {len(rows)}"
    return rows


@pytest.fixture(scope="module")
def tight_pool():
    """A private pool with short limits so hostile tools are stopped within a couple of seconds (CPU 0.5 s
    well under the 3 s wall clock, so a busy loop meets the CPU limit first even on a loaded machine)."""
    limits = SandboxLimits(timeout_s=3.0, cpu_s=0.5, memory_mb=512, file_size_mb=4, max_print_chars=100_000)
    pool = SandboxPool(SandboxConfig(workers=2, limits=limits, grace_s=1.0))
    pool.wait_ready()
    yield pool
    pool.close()
