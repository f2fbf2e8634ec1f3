"""Process-wide settings of the tool backends, from the trainer config.

``actor_rollout_ref.rollout.custom.toolmaster.{sandbox,bfcl,http}`` (or the ``toolmaster:`` entry of the
agent-loop YAML) hold mappings shaped like :class:`~.sandbox_pool.SandboxConfig` (``limits`` nested),
:class:`~.bfcl_env.BfclRuntime` and :class:`~.http_env.HttpConfig`. :func:`runtime_settings` validates them
(unknown keys and bad values raise ``ValueError`` naming the full key); :func:`apply_runtime` installs them in
the current process (every agent-loop worker does so when it reads its loop config).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Mapping

SECTIONS = ("sandbox", "bfcl", "http")


@dataclass(frozen=True)
class RuntimeSettings:
    """Validated backend settings; None = leave the process default (code defaults, TOOLMASTER_STB_* variables)."""

    sandbox: Any = None  # SandboxConfig or None
    bfcl: Any = None  # BfclRuntime or None
    http: Any = None  # HttpConfig or None


def build_dataclass(cls: type, values: Mapping[str, Any], where: str, base: Any = None) -> Any:
    """``cls`` from ``values`` (on top of ``base``, default ``cls()``); nested dataclass fields take mappings.

    Unknown keys, wrong types (int where a float is fine) and values ``cls`` rejects raise ``ValueError``
    naming ``where.key``.
    """
    if not isinstance(values, Mapping):
        raise ValueError(f"{where} must be a mapping of keys, got {type(values).__name__}")
    base = base if base is not None else cls()
    known = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; known keys: {sorted(known)}")
    changes: dict[str, Any] = {}
    for key, value in values.items():
        current = getattr(base, key)
        if dataclasses.is_dataclass(current):
            changes[key] = build_dataclass(type(current), value, f"{where}.{key}", current)
            continue
        if current is not None and value is not None and not _same_kind(current, value):
            raise ValueError(f"{where}.{key}={value!r} must be a {type(current).__name__}")
        changes[key] = value
    try:
        return dataclasses.replace(base, **changes)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{where}: {e}") from None


def _same_kind(current: Any, value: Any) -> bool:
    if isinstance(current, bool) or isinstance(value, bool):
        return isinstance(current, bool) and isinstance(value, bool)
    if isinstance(current, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(current))


def runtime_settings(sections: Mapping[str, Any], where: str) -> RuntimeSettings:
    """Validate the ``sandbox``/``bfcl``/``http`` mappings found under ``where``."""
    from .bfcl_env import BfclRuntime
    from .http_env import HttpConfig
    from .sandbox_pool import SandboxConfig

    def get(name: str, cls: type, base: Any = None) -> Any:
        value = sections.get(name)
        return None if value is None else build_dataclass(cls, value, f"{where}.{name}", base)

    return RuntimeSettings(
        sandbox=get("sandbox", SandboxConfig),
        bfcl=get("bfcl", BfclRuntime),
        http=get("http", HttpConfig, HttpConfig.from_env()),
    )


_APPLIED: dict[str, Any] = {}


def apply_runtime(settings: RuntimeSettings) -> None:
    """Install the settings in this process; a section equal to what is installed is left alone (no restart)."""
    from .bfcl_env import configure_bfcl
    from .http_env import configure_http
    from .sandbox_pool import configure_pool

    for name, configure in (("sandbox", configure_pool), ("bfcl", configure_bfcl), ("http", configure_http)):
        value = getattr(settings, name)
        key = f"{os.getpid()}:{name}"
        if value is not None and _APPLIED.get(key) != value:
            configure(value)
            _APPLIED[key] = value
