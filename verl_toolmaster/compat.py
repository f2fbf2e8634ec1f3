"""The one place that names verl internals, so a verl upgrade touches one file.

Every verl class or function the add-on uses is listed in ``_INTERNALS`` and resolved lazily on first
attribute access (``from verl_toolmaster.compat import AgentLoopBase``), which keeps ``import verl`` (and thus
our plugin) cheap. ``check_verl_version()`` fails loudly when the installed verl is not the supported one.
"""

from __future__ import annotations

import importlib
from typing import Any

SUPPORTED_VERL = "0.9.1"

# name -> "module:attribute" (attribute may be dotted). Add new verl imports here, nowhere else.
_INTERNALS: dict[str, str] = {
    # agent loop
    "AgentLoopBase": "verl.experimental.agent_loop.agent_loop:AgentLoopBase",
    "AgentLoopOutput": "verl.experimental.agent_loop.agent_loop:AgentLoopOutput",
    "AgentLoopMetrics": "verl.experimental.agent_loop.agent_loop:AgentLoopMetrics",
    "AgentLoopWorker": "verl.experimental.agent_loop.agent_loop:AgentLoopWorker",
    "DictConfigWrap": "verl.experimental.agent_loop.agent_loop:DictConfigWrap",
    "ToolListWrap": "verl.experimental.agent_loop.agent_loop:ToolListWrap",
    "agent_loop_registry": "verl.experimental.agent_loop.agent_loop:_agent_loop_registry",
    "ToolAgentLoop": "verl.experimental.agent_loop.tool_agent_loop:ToolAgentLoop",
    "ToolParser": "verl.experimental.agent_loop.tool_parser:ToolParser",
    # reward loop
    "RewardManagerBase": "verl.experimental.reward_loop.reward_manager.base:RewardManagerBase",
    "register_reward_manager": "verl.experimental.reward_loop.reward_manager.registry:register",
    "get_reward_manager_cls": "verl.experimental.reward_loop.reward_manager.registry:get_reward_manager_cls",
    "RewardLoopWorker": "verl.experimental.reward_loop:RewardLoopWorker",
    "migrate_legacy_reward_impl": "verl.experimental.reward_loop:migrate_legacy_reward_impl",
    # rollout
    "TokenOutput": "verl.workers.rollout.replica:TokenOutput",
    "RolloutReplica": "verl.workers.rollout.replica:RolloutReplica",
    "RolloutReplicaRegistry": "verl.workers.rollout.replica:RolloutReplicaRegistry",
    "BaseRollout": "verl.workers.rollout.base:BaseRollout",
    "rollout_registry": "verl.workers.rollout.base:_ROLLOUT_REGISTRY",
    # platform / devices / distributed
    "PlatformBase": "verl.plugin.platform.platform_base:PlatformBase",
    "PlatformRegistry": "verl.plugin.platform.platform_manager:PlatformRegistry",
    "get_device_name": "verl.utils.device:get_device_name",
    "PrecisionType": "verl.utils.torch_dtypes:PrecisionType",
    # training engine (cpu/engine.py): micro-batch flags as verl's FSDP engine reads them
    "get_non_tensor_data": "verl.utils.tensordict_utils:get_non_tensor_data",
    "DatasetPadMode": "verl.utils.dataset.dataset_utils:DatasetPadMode",
    # tools and datasets
    "OpenAIFunctionToolSchema": "verl.tools.schemas:OpenAIFunctionToolSchema",
    "ToolResponse": "verl.tools.schemas:ToolResponse",
    "RLHFDataset": "verl.utils.dataset.rl_dataset:RLHFDataset",
    "MultiTurnSFTDataset": "verl.utils.dataset.multiturn_sft_dataset:MultiTurnSFTDataset",
    "hf_tokenizer": "verl.utils:hf_tokenizer",
}

# Modules whose names we patch or hook into (post-import hooks in plugin.py / cpu/).
MODULES = {
    "agent_loop": "verl.experimental.agent_loop.agent_loop",
    "reward_registry": "verl.experimental.reward_loop.reward_manager.registry",
    "replica": "verl.workers.rollout.replica",
    "rollout_base": "verl.workers.rollout.base",
    "distributed": "verl.utils.distributed",
    "engine_workers": "verl.workers.engine_workers",
    "fsdp_engine": "verl.workers.engine.fsdp.transformer_impl",
    "platform_manager": "verl.plugin.platform.platform_manager",
    "ray_base": "verl.single_controller.ray.base",
}


class VerlVersionError(RuntimeError):
    """The installed verl is not the version this add-on was built and tested against."""


def installed_verl_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("verl")
    except PackageNotFoundError:
        return "not installed"


def check_verl_version(installed: str | None = None) -> None:
    """Raise :class:`VerlVersionError` naming both versions unless verl is exactly ``SUPPORTED_VERL``."""
    installed = installed or installed_verl_version()
    if installed != SUPPORTED_VERL:
        raise VerlVersionError(
            f"verl-toolmaster supports verl=={SUPPORTED_VERL} but verl {installed} is installed; "
            f'install it with: pip install "verl[verl-core]=={SUPPORTED_VERL}"'
        )


def resolve(target: str) -> Any:
    """Import ``"module:attr.sub"`` and return the object."""
    module_name, _, attr = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


def __getattr__(name: str) -> Any:
    target = _INTERNALS.get(name)
    if target is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = resolve(target)
    globals()[name] = value  # cache: later lookups skip __getattr__
    return value

# agent loop (helper 3): timers, tracing, verl tools for the ToolAgentLoop baseline in bench/agent_loop.py
_INTERNALS.update(
    {
        "simple_timer": "verl.utils.profiler:simple_timer",
        "rollout_trace_op": "verl.utils.rollout_trace:rollout_trace_op",
        "FunctionTool": "verl.tools.function_tool:FunctionTool",
    }
)
MODULES.update({"trainer_v1": "verl.trainer.ppo.v1.trainer_base", "trainer_v0": "verl.trainer.ppo.ray_trainer"})


# data (verl_toolmaster.data.sft_dataset): verl's own nested-value normaliser for parquet rows
_INTERNALS["convert_nested_value_to_list_recursive"] = "verl.utils.py_functional:convert_nested_value_to_list_recursive"

# eval (verl_toolmaster.eval): the training data path, reward-manager loading and validation metric naming
_INTERNALS.update(
    {
        "get_dataset_class": "verl.utils.dataset.rl_dataset:get_dataset_class",
        "load_reward_manager": "verl.trainer.ppo.reward:load_reward_manager",
        "process_validation_metrics": "verl.trainer.ppo.metric_utils:process_validation_metrics",
        "Tracking": "verl.utils.tracking:Tracking",
    }
)
_INTERNALS["resolve_config_path"] = "verl.utils.import_utils:resolve_config_path"  # eval: agent_loop_config_path like the worker

# AgentLoopBase's private method that left-truncates the initial prompt to rollout.prompt_length (it only logs a
# warning); the agent loop wraps it to record how many tokens the prompt needed (toolmaster/prompt_truncated/*).
PROMPT_CAP_METHOD = "_cap_text_prompt_length"
# AgentLoopWorker's private coroutine that builds and runs one trajectory's agent loop (hydra.utils.instantiate, then
# run()); the plugin gates its start (verl_toolmaster/loop_health.py).
RUN_TRAJECTORY_METHOD = "_run_agent_loop"
