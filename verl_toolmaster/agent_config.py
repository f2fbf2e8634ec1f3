"""Configuration of :class:`~verl_toolmaster.agent_loop.ToolMasterAgentLoop`.

Sources, later ones win:

1. the defaults below;
2. verl's own keys where verl has one: ``actor_rollout_ref.rollout.multi_turn.{max_assistant_turns,
   max_parallel_calls, max_tool_response_length, tool_response_truncate_side}``;
3. the ``toolmaster:`` mapping of the loop's entry in the ``agent.agent_loop_config_path`` YAML
   (verl passes an entry's extra keys to the constructor);
4. ``actor_rollout_ref.rollout.custom.toolmaster.*``, verl's extension point for custom rollout settings
   (on the command line: ``+actor_rollout_ref.rollout.custom.toolmaster.trial_mode=off``).

Unknown keys and out-of-range values raise ``ValueError`` naming the key and where it came from.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Mapping

from .envs.runtime import SECTIONS, RuntimeSettings, runtime_settings
from .protocol.tags import TRIAL_MODES

_TRUNCATE_SIDES = ("left", "right", "middle")
_NO_TAG_ACTIONS = ("feedback", "stop")


@dataclass(frozen=True)
class ToolMasterLoopConfig:
    """Budgets and switches of the trial-and-execution rollout (see docs/protocol.md)."""

    trial_mode: str = "on"  # "on": the <trial>/<execute>/<answer> protocol; "off": plain multi-turn tool use (baseline)
    max_trial_turns: int = 3  # <trial> replies allowed per user turn; the model is told when they are spent
    max_execute_turns: int = 8  # <execute> replies (trial_mode off: replies with calls) allowed per user turn
    max_calls_per_turn: int = 8  # tool calls run per reply; further calls are not run (violation too_many_calls)
    max_turns: int = 16  # assistant replies per episode (all user turns); multi_turn.max_assistant_turns if set
    max_violations: int | None = 8  # the episode ends ("max_violations") at this many violations; None: no limit
    allow_retrial: bool = False  # allow <trial> after <execute> within the same user turn
    no_tag_action: str = "feedback"  # reply with neither tag nor call: "feedback" (observation) or "stop" (ends episode)
    tool_timeout_s: float = 60.0  # wall-clock limit of one call, on top of the environment's own limits
    announce_new_tools: bool = True  # prefix a follow-up user message with the tools revealed at that user turn
    system_prompt: str | None = None  # None: keep the row's system message; "default": protocol text for trial_mode; else this text
    # From verl's multi_turn section:
    max_parallel_calls: int = 1  # calls of one reply run concurrently in groups of this size, in order
    max_tool_response_length: int = 256  # characters of a tool response shown to the model; longer ones are cut
    tool_response_truncate_side: str = "middle"  # where a long tool response is cut: left, right or middle
    # Keys sandbox / bfcl / http: settings of the tool backends of this process (envs/runtime.py, docs/knobs.md).
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"toolmaster config: {key}={getattr(self, key)!r} {why}")

        if self.trial_mode not in TRIAL_MODES:
            raise bad("trial_mode", f"must be one of {TRIAL_MODES}")
        if self.no_tag_action not in _NO_TAG_ACTIONS:
            raise bad("no_tag_action", f"must be one of {_NO_TAG_ACTIONS}")
        if self.tool_response_truncate_side not in _TRUNCATE_SIDES:
            raise bad("tool_response_truncate_side", f"must be one of {_TRUNCATE_SIDES}")
        for key in ("max_trial_turns",):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise bad(key, "must be an integer >= 0")
        for key in ("max_execute_turns", "max_calls_per_turn", "max_turns", "max_parallel_calls", "max_tool_response_length"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise bad(key, "must be an integer >= 1")
        if self.max_violations is not None and (not isinstance(self.max_violations, int) or self.max_violations < 1):
            raise bad("max_violations", "must be an integer >= 1 or null")
        if not self.tool_timeout_s > 0:
            raise bad("tool_timeout_s", "must be > 0")


_FIELDS = ({f.name for f in fields(ToolMasterLoopConfig)} - {"runtime"}) | set(SECTIONS)
_VERL_KEYS = {  # ours <- actor_rollout_ref.rollout.multi_turn.<key>
    "max_turns": "max_assistant_turns",
    "max_parallel_calls": "max_parallel_calls",
    "max_tool_response_length": "max_tool_response_length",
    "tool_response_truncate_side": "tool_response_truncate_side",
}


def load_config(rollout_config: Any, entry: Mapping[str, Any] | None = None) -> ToolMasterLoopConfig:
    """Merge the four sources (module docstring) into a validated config.

    ``rollout_config`` is ``actor_rollout_ref.rollout`` (DictConfig or dataclass); ``entry`` is the
    ``toolmaster`` mapping of the agent-loop YAML entry.
    """
    values: dict[str, Any] = {}
    multi_turn = _get(rollout_config, "multi_turn")
    fmt = _get(multi_turn, "format")
    if fmt not in (None, "hermes"):
        raise ValueError(
            f"actor_rollout_ref.rollout.multi_turn.format={fmt!r}: ToolMasterAgentLoop speaks the hermes tool-call "
            "format (<tool_call>{...}</tool_call>); set multi_turn.format=hermes"
        )
    for ours, theirs in _VERL_KEYS.items():
        value = _get(multi_turn, theirs)
        if value is not None:
            values[ours] = value
    sections: dict[str, dict[str, Any]] = {}
    where = "the toolmaster entry of agent_loop_config_path"
    for mapping, where in ((entry, where), (_get(_get(rollout_config, "custom"), "toolmaster"), "actor_rollout_ref.rollout.custom.toolmaster")):
        checked = _checked(mapping, where)
        for name in SECTIONS:
            if checked.get(name) is not None:
                if not isinstance(checked[name], Mapping):
                    raise ValueError(f"{where}.{name} must be a mapping of keys, got {type(checked[name]).__name__}")
                sections[name] = _deep_merge(sections.get(name, {}), checked[name])
            checked.pop(name, None)
        values.update(checked)
    return ToolMasterLoopConfig(**values, runtime=runtime_settings(sections, where))


def _checked(mapping: Any, where: str) -> dict[str, Any]:
    if mapping is None:
        return {}
    mapping = to_plain(mapping)
    if not isinstance(mapping, dict):
        raise ValueError(f"{where} must be a mapping of config keys, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - _FIELDS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(_FIELDS)}")
    return mapping


def _deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        out[key] = _deep_merge(out[key], value) if isinstance(value, Mapping) and isinstance(out.get(key), Mapping) else value
    return out


def to_plain(value: Any) -> Any:
    try:
        from omegaconf import DictConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf ships with verl
        return value
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def _get(obj: Any, key: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, Mapping):
        return obj.get(key)
    try:
        return obj.get(key)  # DictConfig
    except AttributeError:
        return getattr(obj, key, None)
