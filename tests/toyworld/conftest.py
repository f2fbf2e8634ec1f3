"""Fixtures of the ToyWorld tests: a small world and its tasks at every level."""

from __future__ import annotations

import pytest

from verl_toolmaster.toyworld import world as tw


@pytest.fixture(scope="module")
def world() -> tw.World:
    return tw.build_world(seed=7, tools_per_split=12)


@pytest.fixture(scope="module")
def tasks(world) -> dict[str, list]:
    """40 tasks per split, levels 1-5 in turn."""
    return {s: tw.make_tasks(world, s, 40, tw.LEVELS) for s in tw.SPLITS}
