"""Train/test splits of Task lists: seeded random, and tool-disjoint (no tool name in two splits)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from .task import Task


@dataclass
class SplitResult:
    """Tasks per split name (in input order) and the tasks that had to be dropped."""

    splits: dict[str, list[Task]]  # split name -> tasks
    dropped: list[Task] = field(default_factory=list)  # tasks left out (tool-disjoint: tools in several splits)
    ignored_tools: list[str] = field(default_factory=list)  # tool names exempt from the disjointness check


def parse_fractions(text: str) -> dict[str, float]:
    """``"train=0.8,test=0.2"`` -> ``{"train": 0.8, "test": 0.2}``; at least two positive parts summing to 1."""
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ValueError(f"split fractions must look like 'train=0.8,test=0.2', got {text!r}")
        try:
            out[name] = float(value)
        except ValueError:
            raise ValueError(f"split fraction for {name!r} is not a number: {value!r}") from None
        if out[name] <= 0:
            raise ValueError(f"split fraction for {name!r} must be positive, got {out[name]}")
    if len(out) < 2:
        raise ValueError(f"give at least two splits, got {text!r}")
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {sum(out.values())}")
    return out


def _targets(n: int, fractions: dict[str, float]) -> dict[str, int]:
    """Largest-remainder rounding of ``n * fraction``."""
    raw = {k: n * f for k, f in fractions.items()}
    counts = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - counts[k], reverse=True)[: n - sum(counts.values())]:
        counts[k] += 1
    return counts


def random_split(tasks: Sequence[Task], fractions: dict[str, float], seed: int) -> SplitResult:
    """Seeded shuffle, then cut by fractions; each split keeps the input order."""
    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    counts = _targets(len(tasks), fractions)
    assign: dict[int, str] = {}
    pos = 0
    for name, c in counts.items():
        for i in order[pos : pos + c]:
            assign[i] = name
        pos += c
    return SplitResult({name: [t for i, t in enumerate(tasks) if assign[i] == name] for name in fractions})


def tool_names(task: Task) -> set[str]:
    env = task.env
    tools = list(env.get("tools", [])) + [t for ts in env.get("turn_tools", {}).values() for t in ts]
    return {t["function"]["name"] for t in tools}


def tool_disjoint_split(tasks: Sequence[Task], fractions: dict[str, float], seed: int, ignore_tools: Sequence[str] = ()) -> SplitResult:
    """Split so that no tool name (outside ``ignore_tools``) appears in two splits.

    Tools are the unit of assignment. Tasks linked by shared tools form connected components; whole components
    are placed first (largest first, seeded order among equals) into the split furthest below its target, which
    drops nothing. A component larger than what remains of every split's target is then cut: its tools are
    claimed split by split, growing each split from a random task by always adding the task that brings in the
    fewest new tools; tasks whose tools end up in two splits are dropped. Splits are named in ``fractions``
    order; a split that receives no task is still present (empty).
    """
    ignore = set(ignore_tools)
    rng = random.Random(seed)
    n = len(tasks)
    targets = _targets(n, fractions)
    tools_of = [tool_names(t) - ignore for t in tasks]

    # components over tasks, via union-find on tool names
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict[str, int] = {}
    for i, names in enumerate(tools_of):
        for name in names:
            if name in owner:
                a, b = find(i), find(owner[name])
                if a != b:
                    parent[a] = b
            else:
                owner[name] = i
    comps: dict[int, list[int]] = {}
    for i in range(n):
        comps.setdefault(find(i), []).append(i)
    components = list(comps.values())
    rng.shuffle(components)
    components.sort(key=len, reverse=True)

    assign: dict[int, str] = {}
    filled = {k: 0 for k in fractions}
    oversized: list[list[int]] = []
    for comp in components:
        deficit = {k: targets[k] - filled[k] for k in fractions}
        best = max(deficit, key=lambda k: deficit[k])
        if len(comp) <= deficit[best] or len(comp) == 1:
            for i in comp:
                assign[i] = best
            filled[best] += len(comp)
        else:
            oversized.append(comp)

    dropped: list[int] = []
    for comp in oversized:
        remaining = set(comp)
        claimed: dict[str, str] = {}  # tool -> split
        names = sorted(fractions, key=lambda k: targets[k] - filled[k])  # smallest need first, largest takes the rest
        for split in names[:-1]:
            need = targets[split] - filled[split]
            if need <= 0 or not remaining:
                continue
            # grow the split from a random task, then keep adding the task that brings in the fewest new tools
            foreign = {t for t, s in claimed.items() if s != split}
            free = [i for i in sorted(remaining) if not (tools_of[i] & foreign)]
            members: list[int] = []
            split_tools: set[str] = set()
            while free and len(members) < need:
                if members:
                    pick = min(free, key=lambda i: (len(tools_of[i] - split_tools), rng.random()))
                else:
                    pick = rng.choice(free)
                members.append(pick)
                free.remove(pick)
                remaining.discard(pick)
                split_tools |= tools_of[pick]
                for t in tools_of[pick]:
                    claimed[t] = split
            # tasks whose tools are all in this split already cost nothing to add: take them rather than drop them
            for i in sorted(remaining):
                if tools_of[i] <= split_tools:
                    members.append(i)
                    remaining.discard(i)
            for i in members:
                assign[i] = split
            filled[split] += len(members)
        last = names[-1]
        # the largest split takes every task none of whose tools another split claimed ...
        for i in sorted(remaining):
            if all(claimed.get(t, last) == last for t in tools_of[i]):
                assign[i] = last
                filled[last] += 1
                for t in tools_of[i]:
                    claimed[t] = last
        # ... a task whose claimed tools all sit in one split joins it; only tasks spanning splits are dropped
        for i in sorted(remaining):
            if i in assign:
                continue
            owners = {claimed[t] for t in tools_of[i] if t in claimed}
            if len(owners) == 1:
                split = owners.pop()
                assign[i] = split
                filled[split] += 1
                for t in tools_of[i]:
                    claimed[t] = split
            else:
                dropped.append(i)

    return SplitResult(
        {name: [t for i, t in enumerate(tasks) if assign.get(i) == name] for name in fractions},
        dropped=[tasks[i] for i in sorted(dropped)],
        ignored_tools=sorted(ignore),
    )
