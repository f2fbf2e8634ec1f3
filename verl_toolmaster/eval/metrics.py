"""``metrics.json``: ``{"overall": M, "by_source": {source: M}, "by_split": {split: M}, "by_level": {level: M}}``.

Per-row values are the reward manager's ``reward_extra_info`` (the numbers verl validation averages, same
names); M averages them over the rows a policy ran. Rows the gold policy does not run are counted and left
out of every mean: ``no_gold`` (the benchmark has no trace) and ``bad_gold`` (the trace cannot be replayed, e.g.
it calls a tool the environment does not offer at that turn; the trajectory's ``detail`` says why).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Callable, Iterable

# reward_extra_info keys averaged per row (names as the reward manager and verl validation use them).
MEAN_KEYS = (
    "answer",  # task success in [0, 1] from the data source's scorer: the accuracy
    "acc",  # 1.0 when answer >= the reward's correct_threshold (verl validation's core metric)
    "score",  # the reward
    "format",  # protocol compliance in [0, 1]
    "trial",  # trial usefulness in [0, 1]
    "cost",  # over-budget cost in [0, 1]
    "trial_calls",  # calls per row in the trial phase
    "execute_calls",  # calls per row in the execute phase
    "self_corrections",  # execute calls that succeeded after a failed call of the same tool (same user turn)
    "tool_errors",  # failed calls per row
    "violations",  # protocol violations per row
)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(trajs: Iterable[dict[str, Any]], *, gold: bool = False) -> dict[str, Any]:
    """One M over ``trajs`` (rows with ``status == "ok"`` enter the means)."""
    trajs = list(trajs)
    ran = [t for t in trajs if t.get("status") == "ok"]
    m: dict[str, Any] = {"n": len(ran)}
    for key in MEAN_KEYS:
        m[key] = _mean([float(t["reward"][key]) for t in ran if t["reward"].get(key) is not None])
    calls = sum(float(t["reward"].get("trial_calls") or 0) + float(t["reward"].get("execute_calls") or 0) for t in ran)
    errors = sum(float(t["reward"].get("tool_errors") or 0) for t in ran)
    m["tool_error_rate"] = errors / calls if calls else None  # pooled: failed calls / all calls
    m["turns"] = _mean([float((t.get("counts") or {}).get("assistant_turns", 0)) for t in ran])
    m["terminations"] = dict(sorted(Counter(str(t.get("termination")) for t in ran).items()))
    m["reasons"] = dict(sorted(Counter(str(t["reward"].get("reason")) for t in ran).items()))
    m["prompt_truncated"] = sum(1 for t in ran if t.get("prompt_truncated"))
    if gold:
        m["no_gold"] = sum(1 for t in trajs if t.get("status") == "no_gold")
        m["bad_gold"] = sum(1 for t in trajs if t.get("status") == "bad_gold")  # traces the oracle cannot replay
    return m


def group(trajs: list[dict[str, Any]], key: Callable[[dict[str, Any]], str], *, gold: bool) -> dict[str, dict[str, Any]]:
    keys = sorted({key(t) for t in trajs})
    return {k: summarize([t for t in trajs if key(t) == k], gold=gold) for k in keys}


def compute(trajs: list[dict[str, Any]], *, gold: bool) -> dict[str, Any]:
    """The metrics.json body (without run bookkeeping)."""
    return {
        "overall": summarize(trajs, gold=gold),
        "by_source": group(trajs, lambda t: t["data_source"], gold=gold),
        "by_split": group(trajs, lambda t: t["split"], gold=gold),
        "by_level": group(trajs, lambda t: t["level"], gold=gold),
    }
