"""The tool-environment interface shared by synthesis, RL rollout and evaluation.

An environment is built from a task's JSON spec (``{"kind": <registry key>, ...payload}``), lists that
task's tools as OpenAI function schemas, executes calls asynchronously, forks a scratch copy for trials and
reports per-call metrics. A failed call is never an exception: it is an :class:`Observation` with
``ok=False`` and an ``error_kind`` the model can learn from and the metrics can count.
"""

from __future__ import annotations

import hashlib
import json
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

# Error kinds every environment uses for the same failure, so metrics line up across kinds.
ERROR_KINDS = (
    "unknown_tool",  # the name is not one of the task's tools
    "bad_arguments",  # arguments are not a JSON object / not decodable
    "schema",  # arguments violate the tool's JSON schema (missing, wrong type, enum, extra)
    "exception",  # the tool raised
    "timeout",  # wall-clock limit hit
    "resource",  # CPU-time / memory / output-size limit hit, or the worker died
    "import_error",  # tool source imports a library that is not installed
    "http",  # transport failure of a remote backend (down, 5xx, malformed reply, circuit open)
    "cache_miss",  # strict replay found no recorded observation
)


@dataclass
class Observation:
    """What one tool call returned, as the model will see it."""

    ok: bool  # True when the tool ran and returned normally
    text: str  # the text shown to the model (result or a precise error message)
    error_kind: str | None = None  # one of ERROR_KINDS when ok is False
    latency_s: float = 0.0  # wall time of the call, seconds

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "text": self.text, "error_kind": self.error_kind, "latency_s": self.latency_s}


@dataclass
class CallMetrics:
    """Per-environment counters, summed over the calls it served."""

    calls: int = 0  # calls served
    errors: dict[str, int] = field(default_factory=dict)  # error_kind -> count
    total_latency_s: float = 0.0  # summed latency of all calls

    def record(self, obs: Observation) -> None:
        self.calls += 1
        self.total_latency_s += obs.latency_s
        if not obs.ok:
            kind = obs.error_kind or "exception"
            self.errors[kind] = self.errors.get(kind, 0) + 1


class ToolEnv(ABC):
    """One task's tools. A new instance per trajectory; ``fork()`` gives an independent scratch copy."""

    kind: ClassVar[str] = ""
    # True when a call's result depends on earlier calls (the cache then keys on the call history too).
    stateful: ClassVar[bool] = False

    def __init__(self, spec: dict[str, Any]):
        self.spec = spec
        self.metrics = CallMetrics()
        self.turn = 0  # index of the current user turn (multi-turn tasks reveal tools per turn)

    @abstractmethod
    def tools(self) -> list[dict[str, Any]]:
        """OpenAI function schemas (``{"type": "function", "function": {...}}``) visible now."""

    @abstractmethod
    async def call(self, name: str, arguments: dict[str, Any] | str) -> Observation:
        """Execute one call. Never raises for a bad call; returns an error Observation instead."""

    @abstractmethod
    def fork(self) -> "ToolEnv":
        """An independent copy whose side effects never reach this environment (for trials)."""

    async def close(self) -> None:
        """Release processes, sockets or files held by this environment."""

    def set_turn(self, turn: int) -> None:
        """Move to user turn ``turn`` (0-based); kinds whose tools appear at later turns override."""
        self.turn = turn

    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.tools()]

    def callable_names(self) -> list[str]:
        """Names a call may use: the listed tools, plus any the task accepts without listing them (the schema
        kind's ``unlisted_tools``: a gold the benchmark scores by name although its tool list omits the tool)."""
        return self.tool_names()

    def canonical(self, name: str, arguments: dict[str, Any] | str) -> tuple[str, dict[str, Any] | str]:
        """Map a call as the model wrote it (possibly to a renamed tool) to the backend's name and arguments.

        Identity here; the perturbation wrapper overrides it. The call log records the canonical form.
        """
        return name, arguments

    def positional_params(self, name: str) -> list[str]:
        """Parameter names in positional order, to bind positional arguments of call strings (gold traces).

        Default: the schema's property order; kinds with a real signature (python, bfcl) override.
        """
        for tool in self.tools():
            if tool["function"]["name"] == name:
                return list((tool["function"].get("parameters") or {}).get("properties") or {})
        return []

    def fingerprint(self, name: str) -> str:
        """A digest of what backs tool ``name`` in this task, so cached observations never cross tasks."""
        schema = next((t for t in self.tools() if t["function"]["name"] == name), None)
        return digest({"kind": self.kind, "tool": schema})

    def _checked(self, name: str, arguments: dict[str, Any] | str, known: Any) -> tuple[dict[str, Any] | None, Observation | None]:
        """Decoded arguments of a call to ``name``, or the error Observation for an unknown tool or bad arguments.

        ``known`` holds the tool names this environment can run now (the ``in`` test is all that is used).
        """
        if name not in known:
            return None, unknown_tool(name, self.tool_names())
        return decode_arguments(name, arguments)

    def _finish(self, obs: Observation, started: float) -> Observation:
        """Stamp the latency and count the call; every kind ends ``call`` with this."""
        obs.latency_s = time.perf_counter() - started
        self.metrics.record(obs)
        return obs


def check_numbers(obj: Any, where: str, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = (), at_least_one: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` naming ``where: key=value`` for the first field outside its range (settings dataclasses)."""
    for keys, ok, why in ((positive, lambda v: v > 0, "must be > 0"), (non_negative, lambda v: v >= 0, "must be >= 0"),
                          (at_least_one, lambda v: isinstance(v, int) and v >= 1, "must be an integer >= 1")):
        for key in keys:
            value = getattr(obj, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not ok(value):
                raise ValueError(f"{where}: {key}={value!r} {why}")


def digest(obj: Any) -> str:
    """Stable sha256 of a JSON-serialisable object (key order and whitespace do not matter)."""
    blob = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def decode_arguments(name: str, arguments: Any) -> tuple[dict[str, Any] | None, Observation | None]:
    """Arguments as a dict, or an error Observation (``bad_arguments``) saying what is wrong with them.

    Models emit arguments either as an object or as a JSON string; anything else is a malformed call.
    """
    if isinstance(arguments, str):
        text = arguments.strip()
        if not text:
            return {}, None
        try:
            arguments = json.loads(text)
        except json.JSONDecodeError as e:
            return None, Observation(False, f"Error: arguments of {name!r} are not valid JSON ({e.msg} at position {e.pos}).", "bad_arguments")
    if arguments is None:
        return {}, None
    if not isinstance(arguments, dict):
        return None, Observation(
            False, f"Error: arguments of {name!r} must be a JSON object of parameter names to values, got {type(arguments).__name__}.", "bad_arguments"
        )
    return arguments, None


def unknown_tool(name: str, available: list[str]) -> Observation:
    """The error Observation for a call to a tool the task does not offer (at this turn)."""
    return Observation(False, f"Error: unknown tool {name!r}. Available tools: {', '.join(available) if available else '(none)'}.", "unknown_tool")


ENV_REGISTRY: dict[str, type[ToolEnv]] = {}


def register_env(kind: str) -> Callable[[type[ToolEnv]], type[ToolEnv]]:
    """Class decorator adding an environment kind to the registry (idempotent for the same class)."""

    def deco(cls: type[ToolEnv]) -> type[ToolEnv]:
        prev = ENV_REGISTRY.get(kind)
        if prev is not None and prev.__qualname__ != cls.__qualname__:
            raise ValueError(f"environment kind {kind!r} is already registered to {prev.__module__}.{prev.__qualname__}")
        cls.kind = kind
        ENV_REGISTRY[kind] = cls
        return cls

    return deco


def parse_spec(spec: dict[str, Any] | str) -> dict[str, Any]:
    """Accept a spec as a dict or as the JSON string stored in ``extra_info["env"]``."""
    if isinstance(spec, str):
        try:
            spec = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ValueError(f"environment spec is not valid JSON: {e}") from None
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"environment spec must be an object with a 'kind' key, got {type(spec).__name__}")
    return spec
