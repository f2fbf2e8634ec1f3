"""Keep the cyclic garbage collector from stalling the rollout event loop.

An agent-loop worker holds millions of long-lived objects from start-up (torch, transformers, verl, Hydra
configs). Every full collection walks all of them: 0.3-1 s during which the event loop serves no trajectory
(``bench/agent_loop.py``, ``bench/loop_stall.py``). Once start-up is over, :func:`freeze_startup_heap` moves them to
the collector's permanent generation, so later collections only walk what trajectories allocate.
The plugin applies it after every ``AgentLoopWorker.__init__`` (``TOOLMASTER_GC_FREEZE=0`` turns it off).
"""

from __future__ import annotations

import functools
import gc
import logging
import os
from typing import Any

logger = logging.getLogger(__name__)
ENV_SWITCH = "TOOLMASTER_GC_FREEZE"  # "0": leave the collector as it is


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
