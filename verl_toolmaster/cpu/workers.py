"""glibc malloc settings for verl's training worker processes, and only for them.

torch's CPU allocator does not cache: every freed activation (4 MB per layer output of a 651-token row, 128 MB of
logits) goes back to glibc, which hands much of it back to the kernel, and the next allocation faults its pages in
again. During a GRPO update on SmolLM2 the actor took 55,000 minor page faults/s; with the settings below, none,
and ``update_actor`` went from ~70 s to ~63 s (docs/models.md, "Operator-level profiles, and the fixes").

The settings must be in a process's environment when it starts (glibc reads them once), and they must not reach
vLLM's processes: set job-wide (Ray ``runtime_env``) they slowed verl's vLLM rollout from 26-30 s to 36-64 s per
step. verl starts its trainer's workers through ``RayWorkerGroup(worker_env=...)``, a per-actor environment, but
its trainers pass none; this wrapper passes these settings for the trainer's colocated worker class
(``WorkerDict``: actor, reference, critic) and leaves every other worker group (rollout replicas) as verl made it.

``MALLOC_ARENA_MAX=1`` matters because verl's worker has an ``async`` method, so Ray runs its methods on a pool
thread, and a thread's own arena kept faulting: a plain loop on a non-main thread with the other three settings
still took 39,000 faults/s.
A variable already set in the driver's environment wins (Ray workers inherit it); ``TOOLMASTER_CPU_WORKER_MALLOC=0``
turns the settings off.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from types import ModuleType
from typing import Any, Callable

OFF_ENV = "TOOLMASTER_CPU_WORKER_MALLOC"

MALLOC_SETTINGS: dict[str, str] = {
    "MALLOC_ARENA_MAX": "1",  # one arena: Ray's pool thread allocates from the main (brk) heap
    "MALLOC_MMAP_THRESHOLD_": str(1 << 30),  # blocks up to 1 GiB come from the heap, not a fresh mmap
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),  # keep freed heap memory instead of returning it to the kernel
    "MALLOC_TOP_PAD_": str(256 << 20),  # grow the heap in 256 MiB steps
}

# The trainer's colocated worker class (verl.single_controller.ray.base.create_colocated_worker_cls)
TRAINING_WORKER_CLASS = "WorkerDict"


def training_worker_env(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The malloc settings the training workers start with: none if turned off, and none the driver already set."""
    if environ.get(OFF_ENV, "").strip().lower() in {"0", "false", "no", "off"}:
        return {}
    return {k: v for k, v in MALLOC_SETTINGS.items() if k not in environ}


def worker_class_name(ray_cls_with_init: Any) -> str:
    """The class a ``RayClassWithInitArgs`` starts, named as verl names its actors ("ActorClass(WorkerDict)" -> "WorkerDict")."""
    cls = getattr(ray_cls_with_init, "cls", None)
    match = re.fullmatch(r"ActorClass\((.+)\)", type(cls).__name__)
    return match.group(1) if match else getattr(cls, "__name__", type(cls).__name__)


def make_worker_group_init(original: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``RayWorkerGroup.__init__``: the trainer's training workers get :func:`training_worker_env` under any
    ``worker_env`` the caller passed (the caller's keys win)."""
    if getattr(original, "_toolmaster_cpu", False):
        return original

    def __init__(self: Any, resource_pool: Any = None, ray_cls_with_init: Any = None, *args: Any, **kwargs: Any) -> None:
        if ray_cls_with_init is not None and worker_class_name(ray_cls_with_init) == TRAINING_WORKER_CLASS:
            kwargs["worker_env"] = {**training_worker_env(), **(kwargs.get("worker_env") or {})}
        original(self, resource_pool, ray_cls_with_init, *args, **kwargs)

    __init__._toolmaster_cpu = True  # type: ignore[attr-defined]
    __init__._toolmaster_original = original  # type: ignore[attr-defined]
    return __init__


def patch_module(module: ModuleType) -> None:
    """Wrap ``RayWorkerGroup.__init__`` in ``verl.single_controller.ray.base`` (the trainers import the class, not
    the module attribute, so the method is replaced on the class)."""
    module.RayWorkerGroup.__init__ = make_worker_group_init(module.RayWorkerGroup.__init__)
