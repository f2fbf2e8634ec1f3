"""Run synthesis items concurrently (bounded), journal them, count kept and dropped by reason, write the SFT parquet."""

from __future__ import annotations

import asyncio
import json
import sys
import traceback
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Awaitable, Callable, TextIO

import pyarrow.parquet as pq

from verl_toolmaster.data.sft import write_sft_parquet

from .journal import Journal

KEPT, DROPPED, FAILED = "kept", "dropped", "failed"


class AbortRun(Exception):
    """Raised by an item when the whole run must stop (e.g. the endpoint rejects the credentials)."""


@dataclass
class WorkItem:
    """One trajectory to synthesize: an RL row and a variant index (several trajectories per task)."""

    key: str  # journal id: the task id, plus "#<variant>" for variants after the first
    order: int  # position in the input, for a stable output order
    row: dict[str, Any]  # the RL row (prompt, data_source, reward_model, extra_info)
    variant: int = 0


@dataclass
class Outcome:
    key: str
    status: str  # "kept" | "dropped" | "failed" (failed items are not journaled and are tried again next run)
    reason: str | None = None  # drop / failure reason (counted in the report)
    detail: str = ""  # human-readable explanation
    sft: dict[str, Any] | None = None  # the SFT row of a kept item
    stats: dict[str, Any] = field(default_factory=dict)  # per-trajectory numbers (turns, trial calls, errors, ...)

    def entry(self) -> dict[str, Any]:
        return {"id": self.key, "status": self.status, "reason": self.reason, "detail": self.detail, "row": self.sft, "stats": self.stats}


@dataclass
class Report:
    """Counts of a synthesis run; :meth:`line` is the final JSON line of the CLI."""

    items: int = 0  # trajectories asked for (tasks x variants)
    resumed: int = 0  # items already finished in the journal (not run again)
    kept: int = 0  # items kept (this run and resumed)
    dropped: Counter = field(default_factory=Counter)  # reason -> items dropped (this run and resumed)
    failed: Counter = field(default_factory=Counter)  # reason -> items that failed transiently (retried by the next run)
    retries: Counter = field(default_factory=Counter)  # endpoint retries by kind (429, 5xx, timeout, connection)
    written: int = 0  # rows in the output parquet
    stats: Counter = field(default_factory=Counter)  # summed per-trajectory numbers of the kept items

    def line(self) -> str:
        done = self.kept + sum(self.dropped.values()) + sum(self.failed.values())
        if done != self.items:
            raise AssertionError(f"item accounting is off: {self.items} items, {done} kept + dropped + failed")
        out: dict[str, Any] = {
            "items": self.items,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "failed": dict(sorted(self.failed.items())),
            "resumed": self.resumed,
            "written": self.written,
        }
        if self.retries:
            out["retries"] = dict(sorted(self.retries.items()))
        if self.stats:
            out["kept_stats"] = dict(sorted(self.stats.items()))
        return json.dumps(out)


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    """RL rows from prepare.py parquet files; a file that is missing or lacks the RL columns is a ValueError naming it."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        if not Path(path).is_file():
            raise ValueError(f"{path}: no such file")
        try:
            table = pq.read_table(str(path))
        except Exception as e:  # pyarrow raises several types for a file that is not parquet
            raise ValueError(f"{path}: not a readable parquet file ({type(e).__name__}: {e})") from None
        missing = sorted({"prompt", "data_source", "reward_model", "extra_info"} - set(table.column_names))
        if missing:
            raise ValueError(f"{path}: not an RL parquet from data_prep/prepare.py (missing columns {missing})")
        for i, row in enumerate(table.to_pylist()):
            info = row.get("extra_info") or {}
            if not info.get("env"):
                raise ValueError(f"{path}, row {i}: extra_info has no 'env' environment spec")
            rows.append(row)
    return rows


def work_items(rows: list[dict[str, Any]], per_task: int, ids: set[str] | None = None, limit: int | None = None) -> list[WorkItem]:
    """Items for ``per_task`` variants of each row (optionally only task ids in ``ids``, the first ``limit`` tasks)."""
    if per_task < 1:
        raise ValueError(f"per_task must be >= 1, got {per_task}")
    items: list[WorkItem] = []
    seen: set[str] = set()
    n = 0
    for row in rows:
        task_id = str(row["extra_info"].get("task_id", row["extra_info"].get("index")))
        if ids is not None and task_id not in ids:
            continue
        if task_id in seen:
            raise ValueError(f"task id {task_id!r} appears twice in the input; journal ids must be unique")
        seen.add(task_id)
        if limit is not None and n >= limit:
            break
        n += 1
        for v in range(per_task):
            items.append(WorkItem(key=task_id if v == 0 else f"{task_id}#{v}", order=len(items), row=row, variant=v))
    if ids is not None:
        unknown = sorted(ids - seen)
        if unknown:
            raise ValueError(f"task ids not in the input: {unknown[:10]}")
    return items


async def run_items(
    items: list[WorkItem],
    episode: Callable[[WorkItem], Awaitable[Outcome]],
    *,
    concurrency: int,
    journal: Journal | None = None,
    progress: bool = True,
    desc: str = "synth",
    err: TextIO | None = None,
    verbose: bool = False,
) -> tuple[list[Outcome], int]:
    """Run every item not already in the journal, at most ``concurrency`` at a time. Returns (outcomes of all
    items in input order - resumed ones rebuilt from the journal -, number resumed)."""
    from tqdm import tqdm

    err = err or sys.stderr
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    done = journal.load() if journal is not None else {}
    if journal is not None and journal.repaired:
        print(f"note: cut a torn last line off {journal.path} (the previous run was killed mid-write)", file=err)
    outcomes: dict[str, Outcome] = {}
    for item in items:
        entry = done.get(item.key)
        if entry is not None:
            outcomes[item.key] = Outcome(
                item.key, entry["status"], entry.get("reason"), entry.get("detail", ""), entry.get("row"), entry.get("stats") or {}
            )
    resumed = len(outcomes)
    todo = [i for i in items if i.key not in outcomes]
    bar = tqdm(total=len(items), initial=resumed, desc=desc, disable=not progress, file=err, dynamic_ncols=True)
    counts = Counter(o.status for o in outcomes.values())
    gate = asyncio.Semaphore(concurrency)
    tracebacks_shown = 0

    async def one(item: WorkItem) -> None:
        nonlocal tracebacks_shown
        async with gate:
            try:
                outcome = await episode(item)
            except (asyncio.CancelledError, AbortRun):
                raise
            except Exception as e:  # one broken item must not stop the others; it is counted and shown, never hidden
                outcome = Outcome(item.key, FAILED, f"error:{type(e).__name__}", str(e)[:500])
                if tracebacks_shown < 3:
                    tracebacks_shown += 1
                    print(f"error in {item.key}:\n{traceback.format_exc()}", file=err)
        outcomes[item.key] = outcome
        if journal is not None and outcome.status != FAILED:
            journal.append(outcome.entry())
        counts[outcome.status] += 1
        if verbose and outcome.status != KEPT:
            print(f"{outcome.status}: {item.key}: {outcome.reason}: {outcome.detail}", file=err)
        bar.set_postfix(kept=counts[KEPT], dropped=counts[DROPPED], failed=counts[FAILED], refresh=False)
        bar.update(1)

    tasks = [asyncio.ensure_future(one(i)) for i in todo]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:  # stop the other items (their environments close in the loop's finally blocks)
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
    finally:
        bar.close()
    return [outcomes[i.key] for i in items], resumed


def summarize(outcomes: list[Outcome], resumed: int) -> Report:
    report = Report(items=len(outcomes), resumed=resumed)
    for o in outcomes:
        if o.status == KEPT:
            report.kept += 1
            for k, v in (o.stats or {}).items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    report.stats[k] += v
        elif o.status == DROPPED:
            report.dropped[o.reason or "unknown"] += 1
        else:
            report.failed[o.reason or "unknown"] += 1
    return report


def write_output(outcomes: list[Outcome], path: Path, fmt: str) -> int:
    """Write the kept rows (input order) with the data module's SFT writer; returns the row count."""
    rows = [o.sft for o in outcomes if o.status == KEPT and o.sft is not None]
    write_sft_parquet(rows, path, fmt=fmt)
    return len(rows)


def trajectory_stats(record: dict[str, Any]) -> dict[str, Any]:
    """Numbers of one kept trajectory, summed in the report."""
    counts = record["counts"]
    return {
        "trajectories": 1,
        "assistant_turns": counts.get("assistant_turns", 0),
        "trial_calls": counts.get("trial_calls", 0),
        "execute_calls": counts.get("execute_calls", 0),
        "tool_errors": counts.get("tool_errors", 0),
        "self_corrections": counts.get("self_corrections", 0),
    }
