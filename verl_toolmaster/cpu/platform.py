"""A ``cpu`` platform for verl's platform registry (selected with ``VERL_PLATFORM=cpu``).

verl asks the platform, not the config, for the device name, the device module and the collective backend,
so this is what makes FSDP2 workers, the gloo process group and the flops counter run on a CPU.
"""

from __future__ import annotations

import contextlib
import types
from typing import Any, Optional

import torch

from .. import compat

_FAKE_TOTAL_MEMORY = 16 << 30  # reported by mem_get_info; only used by verl for logging and cache sizing


def _noop(*_args: Any, **_kwargs: Any) -> None:
    return None


def _zero(*_args: Any, **_kwargs: Any) -> int:
    return 0


def _build_device_module() -> types.ModuleType:
    """A ``torch.cuda``-shaped module over ``torch.cpu``, covering what verl calls on ``get_torch_device()``."""
    mod = types.ModuleType("verl_toolmaster_cpu_device")
    for name in ("Stream", "Event", "StreamContext", "current_stream", "stream", "synchronize"):
        setattr(mod, name, getattr(torch.cpu, name))
    mod.is_available = lambda: True
    mod.is_initialized = lambda: True
    mod.current_device = lambda: 0
    mod.device_count = lambda: 1
    mod.get_device_name = lambda *_a, **_k: "CPU"
    for name in ("set_device", "empty_cache", "ipc_collect", "reset_peak_memory_stats", "set_per_process_memory_fraction"):
        setattr(mod, name, _noop)
    for name in ("memory_allocated", "memory_reserved", "max_memory_allocated", "max_memory_reserved"):
        setattr(mod, name, _zero)
    mod.mem_get_info = lambda *_a, **_k: (_FAKE_TOTAL_MEMORY, _FAKE_TOTAL_MEMORY)
    mod.manual_seed = torch.manual_seed
    mod.manual_seed_all = torch.manual_seed
    mod.get_rng_state = lambda *_a, **_k: torch.get_rng_state()
    mod.set_rng_state = lambda state, *_a, **_k: torch.set_rng_state(state)
    return mod


class PlatformCPU(compat.PlatformBase):
    """verl platform that runs every worker on the CPU with gloo collectives."""

    _device_module = _build_device_module()

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> types.ModuleType:
        return self._device_module

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        return True

    def current_device(self) -> str:  # verl does model.to(current_device()); 0 would mean cuda:0
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: Optional[int] = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[Optional[int], Optional[int]]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextlib.contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:  # matches the fake GPUs declared to Ray (ray_init.num_gpus)
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def rollout_env_vars(self) -> dict[str, str]:  # verl's vLLM server actors (rollout.name=vllm)
        from .vllm_cpu import rollout_env_vars

        return rollout_env_vars()

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None


def register_platform() -> type:
    compat.PlatformRegistry.register(platform="cpu")(PlatformCPU)
    return PlatformCPU
