"""Kind ``bfcl`` (BFCL multi-turn): the stateful API classes shipped in ``bfcl-eval``, one instance set per env.

Spec payload: ``{"kind": "bfcl", "initial_config": {...}, "involved_classes": [...], "tools": [schemas visible
from turn 0], "turn_tools": {"<turn>": [schemas revealed at that user turn]}, "long_context": bool}``.

Instances are built the way ``bfcl_eval``'s ``execute_multi_turn_func_call`` builds them (its class table,
its stateless list, ``_load_scenario(deepcopy(config), long_context=...)``, public methods mapped by name,
later classes winning), but owned by this object instead of module globals, so ``fork()`` is a deep copy.
Results are rendered as bfcl-eval renders them (strings as-is, dicts as JSON, anything else via ``str``).
bfcl-eval must be installed with ``pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0``.
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any

from .base import Observation, ToolEnv, decode_arguments, digest, register_env, unknown_tool
from .schemas import tool_map
from .trusted_pool import CallTimeout, TrustedPoolConfig, WorkerLost, shared_pool

INSTALL_HINT = "pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0"


def _backend_config() -> tuple[dict[str, str], list[str]]:
    try:
        from bfcl_eval.constants.executable_backend_config import CLASS_FILE_PATH_MAPPING, STATELESS_CLASSES
    except ImportError as e:
        raise ImportError(f"environment kind 'bfcl' needs bfcl-eval ({e}); install it with: {INSTALL_HINT}") from None
    return CLASS_FILE_PATH_MAPPING, STATELESS_CLASSES


def load_instances(classes: list[str], initial_config: dict[str, Any], long_context: bool) -> dict[str, Any]:
    """Fresh bfcl-eval API instances for ``classes``, loaded with their part of ``initial_config``."""
    paths, stateless = _backend_config()
    unknown = [c for c in classes if c not in paths]
    if unknown:
        raise ValueError(f"bfcl environment: unknown involved_classes {unknown}; bfcl-eval knows {sorted(paths)}")
    instances = {}
    for name in classes:
        instance = getattr(importlib.import_module(paths[name]), name)()
        if name not in stateless:
            instance._load_scenario(copy.deepcopy(initial_config.get(name, {})), long_context=long_context)
        instances[name] = instance
    return instances


def method_table(instances: dict[str, Any]) -> dict[str, Any]:
    """Public method name -> bound method, as bfcl-eval maps calls (a later class wins a name clash)."""
    table = {}
    for instance in instances.values():
        for name, method in inspect.getmembers(instance, predicate=inspect.ismethod):
            if not name.startswith("_"):
                table[name] = method
    return table


def binding_problem(name: str, sig: inspect.Signature, args: dict[str, Any]) -> str | None:
    """Every unexpected and missing argument of a keyword call, in one message; None when it binds."""
    params = sig.parameters
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        unexpected = []
    else:
        unexpected = [k for k in args if k not in params or params[k].kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.VAR_POSITIONAL)]
    missing = [n for n, p in params.items() if p.default is p.empty and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and n not in args]
    parts = []
    if unexpected:
        parts.append(f"unexpected keyword argument{'s' if len(unexpected) > 1 else ''} {', '.join(map(repr, unexpected))}")
    if missing:
        parts.append(f"missing required argument{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}")
    if not parts:
        return None
    return f"{name}() got {' and '.join(parts)}; parameters: {', '.join(params)}"


def render_result(value: Any) -> str:
    """bfcl-eval's rendering of an execution result."""
    if type(value) is str:
        return value
    if type(value) is dict:
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


@dataclass
class BfclRuntime:
    """How bfcl-eval's API classes run calls (process-wide: ``configure_bfcl``)."""

    isolation: str = "process"  # "process": each call in a warm child process with a time limit; "inline": in the caller's thread, no limit
    timeout_s: float = 10.0  # wall-clock limit of one call in "process" mode; past it the child is killed and the call is a timeout
    workers: int = 2  # child processes per trainer process in "process" mode (calls beyond wait in a queue)
    memory_mb: int = 4096  # address-space limit of each child in "process" mode (MiB)

    def __post_init__(self) -> None:
        if self.isolation not in ("process", "inline"):
            raise ValueError(f"bfcl: isolation={self.isolation!r} must be 'process' or 'inline'")
        if not (isinstance(self.timeout_s, (int, float)) and self.timeout_s > 0):
            raise ValueError(f"bfcl: timeout_s={self.timeout_s!r} must be > 0")
        try:
            self.pool()
        except ValueError as e:  # workers, memory_mb
            raise ValueError(f"bfcl: {e}".replace("trusted pool: ", "")) from None

    def pool(self) -> TrustedPoolConfig:
        return TrustedPoolConfig(workers=self.workers, memory_mb=self.memory_mb)


_RUNTIME = BfclRuntime()


def configure_bfcl(runtime: BfclRuntime) -> None:
    """Set how this process runs BFCL calls (affects calls made after it)."""
    global _RUNTIME
    _RUNTIME = runtime


def bfcl_runtime() -> BfclRuntime:
    return _RUNTIME


def execute_call(instances: dict[str, Any], name: str, args: dict[str, Any]) -> tuple[Observation, dict[str, Any]]:
    """Run one checked call on ``instances`` (in a trusted child or inline); returns the observation and the
    instances after the call (in a child: the copies that travelled there and back)."""
    method = method_table(instances)[name]
    try:
        # bfcl-eval's executor evals a call string, so each call gets fresh argument objects; the API classes
        # keep references (a tweet's mentions list), which later calls would mutate inside the call log.
        text = render_result(method(**copy.deepcopy(args)))  # rendering a huge int raises too
    except Exception as e:  # noqa: BLE001 - the API's own error, shown as bfcl-eval shows it
        return Observation(False, f"Error during execution: {e}", "exception"), instances
    return Observation(True, text), instances


@register_env("bfcl")
class BfclEnv(ToolEnv):
    """BFCL multi-turn backends; tools can appear at later user turns (``set_turn``)."""

    stateful = True

    def __init__(self, spec: dict[str, Any], _instances: dict[str, Any] | None = None):
        super().__init__(spec)
        classes = spec.get("involved_classes")
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"bfcl environment: 'involved_classes' must be a list of class names, got {classes!r}")
        config = spec.get("initial_config") or {}
        if not isinstance(config, dict):
            raise ValueError(f"bfcl environment: 'initial_config' must be an object, got {type(config).__name__}")
        self._base = tool_map(spec.get("tools", []), "bfcl environment")
        self._later: list[tuple[int, dict[str, dict[str, Any]]]] = []
        for key, tools in sorted((spec.get("turn_tools") or {}).items(), key=lambda kv: int(kv[0]) if str(kv[0]).isdigit() else -1):
            if not str(key).isdigit():
                raise ValueError(f"bfcl environment: 'turn_tools' keys must be user-turn indices, got {key!r}")
            self._later.append((int(key), tool_map(tools, f"bfcl environment, turn {key}")))
        self.long_context = bool(spec.get("long_context", False))
        self.instances = _instances if _instances is not None else load_instances(classes, config, self.long_context)
        self._methods = method_table(self.instances)
        missing = sorted(n for n in self._all_names() if n not in self._methods)
        if missing:
            raise ValueError(f"bfcl environment: tools {missing} have no method in classes {classes}")

    def _all_names(self) -> list[str]:
        return [*self._base, *(n for _, tools in self._later for n in tools)]

    def tools(self) -> list[dict[str, Any]]:
        visible = list(self._base.values())
        for turn, tools in self._later:
            if turn <= self.turn:
                visible.extend(tools.values())
        return visible

    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        started = time.perf_counter()
        visible = self.tool_names()
        if name not in visible:
            return self._finish(unknown_tool(name, visible), started)
        args, err = decode_arguments(name, arguments)
        if err is not None:
            return self._finish(err, started)
        method = self._methods[name]
        problem = binding_problem(name, inspect.signature(method), args)
        if problem:
            return self._finish(Observation(False, f"Error during execution: {problem}", "schema"), started)
        runtime = _RUNTIME
        if runtime.isolation == "inline":
            return self._finish(execute_call(self.instances, name, args)[0], started)
        try:
            obs, instances = await shared_pool(runtime.pool()).call(
                f"{__name__}:execute_call", self.instances, name, args, timeout_s=runtime.timeout_s
            )
        except CallTimeout:
            text = f"Error during execution: {name}() did not finish within {runtime.timeout_s:g} s (time limit); the state is as before the call."
            return self._finish(Observation(False, text, "timeout"), started)
        except WorkerLost as e:
            return self._finish(Observation(False, f"Error during execution: {name}() failed: {e}", "resource"), started)
        self.instances = instances
        self._methods = method_table(instances)
        return self._finish(obs, started)

    def fork(self) -> "BfclEnv":
        twin = BfclEnv(self.spec, _instances=copy.deepcopy(self.instances))
        twin.turn = self.turn
        return twin

    def positional_params(self, name: str) -> list[str]:
        method = self._methods.get(name)
        if method is None:
            return super().positional_params(name)
        return [p.name for p in inspect.signature(method).parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]

    def fingerprint(self, name: str) -> str:
        keys = ("initial_config", "involved_classes", "long_context")
        return digest({"kind": self.kind, "tool": name, **{k: self.spec.get(k) for k in keys}})
