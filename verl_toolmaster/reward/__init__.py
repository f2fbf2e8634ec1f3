"""The ToolMaster reward: per-source scorers and the trial-aware reward manager for verl's reward loop.

Importing this package imports nothing from verl. The manager class lives in :mod:`.manager` and is loaded
only by :func:`register_with_verl`, by ``source=importlib`` configs, or by the lazy attribute below.
"""

from __future__ import annotations

import sys
from typing import Any, TypeVar

REWARD_MANAGER_NAME = "toolmaster"  # reward.reward_manager.name with source=register

_T = TypeVar("_T")
_deferred = False  # register_with_verl() ran while .manager was half-imported; the class decorator finishes it


def register_with_verl() -> None:
    """Register :class:`~.manager.ToolMasterRewardManager` in verl's reward-manager registry as "toolmaster".

    Meant for a post-import hook on ``verl.experimental.reward_loop.reward_manager.registry`` (it only needs
    that module and ``...reward_manager.base``, both complete when the hook fires, even while the
    ``reward_manager`` package ``__init__`` is still running). Idempotent; raises verl's ValueError if another
    class already holds the name.
    """
    global _deferred
    manager = sys.modules.get(f"{__name__}.manager")
    if manager is not None and not hasattr(manager, "ToolMasterRewardManager"):
        # .manager is importing verl's reward_manager package (for RewardManagerBase), which imported the registry
        # and fired this hook before our class exists; @registered_when_defined on the class completes it.
        _deferred = True
        return
    from .manager import ToolMasterRewardManager

    _register(ToolMasterRewardManager)


def _register(cls: Any) -> None:
    from verl_toolmaster import compat

    compat.register_reward_manager(REWARD_MANAGER_NAME)(cls)


def registered_when_defined(cls: _T) -> _T:
    """Class decorator for the manager: completes a registration that verl's hook asked for mid-import."""
    global _deferred
    if _deferred:
        _deferred = False
        _register(cls)
    return cls


def __getattr__(name: str) -> Any:
    if name == "ToolMasterRewardManager":  # source=importlib with module.path=pkg://verl_toolmaster.reward
        from .manager import ToolMasterRewardManager

        return ToolMasterRewardManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REWARD_MANAGER_NAME", "ToolMasterRewardManager", "register_with_verl"]
