"""Tool environments: ``make_env(spec)`` builds one from a task's JSON spec (see ``base.ToolEnv``)."""

from __future__ import annotations

import importlib
from typing import Any

from .base import ENV_REGISTRY, ERROR_KINDS, CallMetrics, Observation, ToolEnv, decode_arguments, parse_spec, register_env

# Built-in kinds, imported on first use so that `import verl` (which loads our plugin) stays cheap.
BUILTIN_KINDS = {
    "python": "verl_toolmaster.envs.python_env",
    "bfcl": "verl_toolmaster.envs.bfcl_env",
    "schema": "verl_toolmaster.envs.schema_env",
    "http": "verl_toolmaster.envs.http_env",
    "toyworld": "verl_toolmaster.envs.toyworld",
}


def make_env(spec: dict[str, Any] | str) -> ToolEnv:
    """Build the environment a task's spec names. Wrappers (``cache``, ``perturb``) are applied from the spec.

    Order: the kind's env, then the cache (keyed by real tool names and arguments), then the perturbation
    (outermost: the model sees renamed tools, everything below sees canonical calls).
    """
    spec = parse_spec(spec)
    kind = spec["kind"]
    if kind not in ENV_REGISTRY and kind in BUILTIN_KINDS:
        importlib.import_module(BUILTIN_KINDS[kind])
    if kind not in ENV_REGISTRY:
        raise ValueError(f"unknown environment kind {kind!r}; registered: {sorted(set(ENV_REGISTRY) | set(BUILTIN_KINDS))}")
    env = ENV_REGISTRY[kind](spec)
    for key in ("cache", "perturb"):
        opts = spec.get(key)
        if opts is not None and not isinstance(opts, dict):
            raise ValueError(f"environment spec key {key!r} must be an object of options, got {type(opts).__name__}")
    if spec.get("cache"):
        from .cache import CachedEnv

        env = CachedEnv(env, spec["cache"])
    if spec.get("perturb"):
        from .perturb import PerturbedEnv

        env = PerturbedEnv(env, spec["perturb"])
    return env


__all__ = [
    "ENV_REGISTRY",
    "ERROR_KINDS",
    "CallMetrics",
    "Observation",
    "ToolEnv",
    "decode_arguments",
    "make_env",
    "parse_spec",
    "register_env",
]
