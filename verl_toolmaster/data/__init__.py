"""Dataset adapters: a benchmark's own files -> :class:`Task` records -> RL rows (``RLHFDataset``) and SFT rows.

``get_adapter(name)`` returns the adapter class registered under ``name`` (built-in ones are imported on first
use); ``python data_prep/prepare.py --help`` is the command-line entry.
"""

from __future__ import annotations

import importlib

from .base import ADAPTER_REGISTRY, Adapter, InvalidRecord, RawRecord, SkipRecord, register_adapter
from .task import AGENT_NAME, Task, rl_row

BUILTIN_ADAPTERS = {
    "toolhop": "verl_toolmaster.data.toolhop",
    "bfcl": "verl_toolmaster.data.bfcl",
    "apibank": "verl_toolmaster.data.apibank",
    "toolrl": "verl_toolmaster.data.toolrl",
    "rotbench": "verl_toolmaster.data.rotbench",
    "stabletoolbench": "verl_toolmaster.data.stabletoolbench",
    "toyworld": "verl_toolmaster.data.toyworld",
}


def adapter_names() -> list[str]:
    return sorted(set(ADAPTER_REGISTRY) | set(BUILTIN_ADAPTERS))


def get_adapter(name: str) -> type[Adapter]:
    """The adapter class for dataset ``name``."""
    if name not in ADAPTER_REGISTRY and name in BUILTIN_ADAPTERS:
        importlib.import_module(BUILTIN_ADAPTERS[name])
    if name not in ADAPTER_REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {adapter_names()}")
    return ADAPTER_REGISTRY[name]


__all__ = [
    "ADAPTER_REGISTRY",
    "AGENT_NAME",
    "Adapter",
    "InvalidRecord",
    "RawRecord",
    "SkipRecord",
    "Task",
    "adapter_names",
    "get_adapter",
    "register_adapter",
    "rl_row",
]
