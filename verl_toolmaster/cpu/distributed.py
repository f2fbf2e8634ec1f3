"""Plain-gloo process-group initialisers for the CPU platform.

verl builds the backend string ``"cpu:gloo,{device}:{backend}"``; with device ``cpu`` that becomes
``"cpu:gloo,cpu:gloo"``, which torch rejects ("Duplicate device type cpu"). These replacements use ``"gloo"``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from types import ModuleType

import torch.distributed as dist


def initialize_global_process_group(timeout_second: int = 36000) -> tuple[int, int, int]:
    """torchrun-style init (``sft_trainer``): gloo over the env:// or ``DIST_INIT_METHOD`` rendezvous."""
    if not dist.is_initialized():
        dist.init_process_group(
            backend="gloo",
            timeout=timedelta(seconds=timeout_second),
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )
    return int(os.environ["LOCAL_RANK"]), int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])


def initialize_global_process_group_ray(timeout_second: int | None = None, backend: str | None = None) -> None:
    """Ray-worker init (FSDP workers): same as verl's but gloo unless a CPU-only backend is asked for."""
    if backend is None or backend.count("cpu:") > 1 or "nccl" in backend:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            rank=int(os.environ.get("RANK", 0)),
            world_size=int(os.environ.get("WORLD_SIZE", 1)),
            timeout=timedelta(seconds=timeout_second) if timeout_second is not None else None,
            init_method=os.environ.get("DIST_INIT_METHOD", None),
        )


def patch_module(module: ModuleType) -> None:
    """Replace the initialisers in ``module`` (verl.utils.distributed, or a module that imported them by name)."""
    if hasattr(module, "initialize_global_process_group"):
        module.initialize_global_process_group = initialize_global_process_group
    if hasattr(module, "initialize_global_process_group_ray"):
        module.initialize_global_process_group_ray = initialize_global_process_group_ray
