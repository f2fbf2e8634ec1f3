"""The ToolMaster reward: per-source scorers and the trial-aware reward manager for verl's reward loop.

Importing this package imports nothing from verl. The manager class lives in :mod:`.manager` and is loaded
only by :func:`register_with_verl`, by ``source=importlib`` configs, or by the lazy attribute below.
"""

from __future__ import annotations

from typing import Any

REWARD_MANAGER_NAME = "toolmaster"  # reward.reward_manager.name with source=register


def register_with_verl() -> None:
    """Register :class:`~.manager.ToolMasterRewardManager` in verl's reward-manager registry as "toolmaster".

    Meant for a post-import hook on ``verl.experimental.reward_loop.reward_manager.registry`` (it only needs
    that module and ``...reward_manager.base``, both complete when the hook fires, even while the
    ``reward_manager`` package ``__init__`` is still running). Idempotent; raises verl's ValueError if another
    class already holds the name.
    """
    from verl_toolmaster import compat

    from .manager import ToolMasterRewardManager

    compat.register_reward_manager(REWARD_MANAGER_NAME)(ToolMasterRewardManager)


def __getattr__(name: str) -> Any:
    if name == "ToolMasterRewardManager":  # source=importlib with module.path=pkg://verl_toolmaster.reward
        from .manager import ToolMasterRewardManager

        return ToolMasterRewardManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["REWARD_MANAGER_NAME", "ToolMasterRewardManager", "register_with_verl"]
