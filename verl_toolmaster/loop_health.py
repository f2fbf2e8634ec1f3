"""Keep the rollout event loop of an AgentLoopWorker responsive (``bench/loop_stall.py`` measures it).

1. Garbage collection. An agent-loop worker holds millions of long-lived objects from start-up (torch, transformers, verl, Hydra
configs). Every full collection walks all of them: 0.3-1 s during which the event loop serves no trajectory
(``bench/agent_loop.py``, ``bench/loop_stall.py``). Once start-up is over, :func:`freeze_startup_heap` moves them to
the collector's permanent generation, so later collections only walk what trajectories allocate.
The plugin applies it after every ``AgentLoopWorker.__init__`` (``TOOLMASTER_GC_FREEZE=0`` turns it off). What
the 512 trajectories of a batch allocate still made full collections of ~50 ms during the batch, so the full
collection moves to the gap between batches (:func:`collect_between_batches`: one ``gc.collect()`` when a
``generate_sequences`` call returns, with the threshold of the oldest generation raised so it rarely runs inside one).

2. Start-up bursts. ``AgentLoopWorker.generate_sequences`` creates one task per trajectory at once; each task's first
step builds its agent loop with ``hydra.utils.instantiate`` (4-8 ms of OmegaConf merging) before its first ``await``,
and asyncio runs all ready first steps in one loop iteration: 512 trajectories stalled the loop for ~2 s.
:func:`gate_starts` lets at most ``TOOLMASTER_START_GATE`` (default 4; 0 = off) trajectories start per iteration.
"""

from __future__ import annotations

import asyncio
import functools
import gc
import logging
import os
import weakref
from typing import Any

logger = logging.getLogger(__name__)
ENV_SWITCH = "TOOLMASTER_GC_FREEZE"  # "0": leave the collector as it is
START_GATE_ENV = "TOOLMASTER_START_GATE"  # trajectories allowed to start per event-loop iteration; "0": no gate


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


def freeze_startup_heap() -> int:
    """Collect once, then exempt every surviving object from future collections; returns how many are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def freeze_after_init(cls: Any) -> None:
    """Wrap ``cls.__init__`` (verl's AgentLoopWorker) to freeze the heap once the worker is built. Idempotent."""
    original = cls.__init__
    if getattr(original, "_toolmaster_gc", False):
        return

    @functools.wraps(original)
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if enabled():
            frozen = freeze_startup_heap()
            logger.info("gc.freeze() after %s start-up: %d objects exempt from collection", cls.__name__, frozen)

    __init__._toolmaster_gc = True
    cls.__init__ = __init__


FULL_COLLECTION_THRESHOLD = 1000  # gen-1 collections before a full one is considered (CPython's default: 10)


def collect_between_batches(cls: Any, method: str) -> None:
    """Wrap the coroutine ``cls.<method>`` (verl's ``generate_sequences``): raise the oldest generation's threshold
    once, and run a full collection after each call, when none of its trajectories is in flight. Idempotent."""
    original = getattr(cls, method)
    if getattr(original, "_toolmaster_gc", False):
        return

    @functools.wraps(original)
    async def collected(self: Any, *args: Any, **kwargs: Any) -> Any:
        if enabled():
            g0, g1, g2 = gc.get_threshold()
            if g2 < FULL_COLLECTION_THRESHOLD:
                gc.set_threshold(g0, g1, FULL_COLLECTION_THRESHOLD)
        try:
            return await original(self, *args, **kwargs)
        finally:
            if enabled():
                gc.collect()  # the batch's cyclic garbage, between batches

    collected._toolmaster_gc = True
    setattr(cls, method, collected)


def start_gate_size() -> int:
    try:
        return max(0, int(os.environ.get(START_GATE_ENV, "4")))
    except ValueError:
        raise ValueError(f"{START_GATE_ENV}={os.environ[START_GATE_ENV]!r} must be an integer >= 0 (0: no gate)") from None


_GATES: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]" = weakref.WeakKeyDictionary()


async def start_turn() -> None:
    """Wait until this trajectory may start: at most ``start_gate_size()`` start per event-loop iteration."""
    size = start_gate_size()
    if size == 0:
        return
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES[loop] = asyncio.Semaphore(size)
    await gate.acquire()
    loop.call_soon(gate.release)  # frees the slot in the next iteration, after this start's synchronous first step


def gate_starts(cls: Any, method: str) -> None:
    """Wrap the coroutine method ``cls.<method>`` (verl's per-trajectory ``_run_agent_loop``) to await
    :func:`start_turn` first. Idempotent."""
    original = getattr(cls, method)
    if getattr(original, "_toolmaster_gate", False):
        return

    @functools.wraps(original)
    async def gated(self: Any, *args: Any, **kwargs: Any) -> Any:
        await start_turn()
        return await original(self, *args, **kwargs)

    gated._toolmaster_gate = True
    setattr(cls, method, gated)
