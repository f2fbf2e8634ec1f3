"""Split invariants on random task/tool graphs: partition, disjointness, minimal drops, determinism."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from verl_toolmaster.data.splits import parse_fractions, random_split, tool_disjoint_split, tool_names
from verl_toolmaster.data.task import Task


def make_tasks(tool_sets: list[list[int]]) -> list[Task]:
    return [
        Task(id=f"t{i}", source="x", query="q", env={"kind": "schema", "tools": [{"type": "function", "function": {"name": f"tool{k}"}} for k in tools]}, ground_truth={})
        for i, tools in enumerate(tool_sets)
    ]


graphs = st.lists(st.lists(st.integers(0, 25), min_size=1, max_size=4, unique=True), min_size=1, max_size=60)
fractions = st.sampled_from([{"train": 0.8, "test": 0.2}, {"train": 0.5, "test": 0.5}, {"train": 0.6, "val": 0.2, "test": 0.2}])


@settings(max_examples=150, deadline=None)
@given(graphs, fractions, st.integers(0, 10), st.booleans())
def test_tool_disjoint_invariants(tool_sets, fr, seed, ignore_common):
    tasks = make_tasks(tool_sets)
    ignore = ["tool0"] if ignore_common else []
    res = tool_disjoint_split(tasks, fr, seed, ignore)
    placed = [t.id for part in res.splits.values() for t in part] + [t.id for t in res.dropped]
    assert sorted(placed) == sorted(t.id for t in tasks)  # a partition: nothing lost, nothing twice
    assert list(res.splits) == list(fr)
    tools_by_split = {s: set().union(*(tool_names(t) for t in part)) - set(ignore) if part else set() for s, part in res.splits.items()}
    names = list(tools_by_split)
    for a in range(len(names)):
        for b in range(a + 1, len(names)):
            assert not tools_by_split[names[a]] & tools_by_split[names[b]]
    for t in res.dropped:  # dropped only when no split could take it without sharing a tool
        touching = {s for s, tools in tools_by_split.items() if (tool_names(t) - set(ignore)) & tools}
        assert len(touching) >= 2, (t.id, touching)
    again = tool_disjoint_split(tasks, fr, seed, ignore)
    assert [[t.id for t in p] for p in again.splits.values()] == [[t.id for t in p] for p in res.splits.values()]


def test_tool_disjoint_places_components_whole_when_possible():
    # 10 separate components of 1 task each: an exact 80/20 split, nothing dropped
    res = tool_disjoint_split(make_tasks([[i] for i in range(10)]), {"train": 0.8, "test": 0.2}, 0)
    assert [len(p) for p in res.splits.values()] == [8, 2] and not res.dropped


def test_tool_disjoint_cuts_one_big_component_with_few_drops():
    # a chain t_i uses tools i and i+1: one component; a cut must drop at least one task per boundary
    res = tool_disjoint_split(make_tasks([[i, i + 1] for i in range(50)]), {"train": 0.8, "test": 0.2}, 1)
    assert len(res.splits["test"]) >= 5 and len(res.dropped) <= 3


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 200), fractions, st.integers(0, 5))
def test_random_split_sizes_and_seed(n, fr, seed):
    tasks = make_tasks([[0]] * n)
    res = random_split(tasks, fr, seed)
    sizes = [len(p) for p in res.splits.values()]
    assert sum(sizes) == n
    assert all(abs(size - n * f) < 1 for size, f in zip(sizes, fr.values()))
    assert [[t.id for t in p] for p in random_split(tasks, fr, seed).splits.values()] == [[t.id for t in p] for p in res.splits.values()]


@pytest.mark.parametrize("text", ["train=0.8", "train=0.8,test=0.3", "train=0.8,test", "a=x,b=1", "a=-0.5,b=1.5"])
def test_bad_fractions_are_refused(text):
    with pytest.raises(ValueError):
        parse_fractions(text)
