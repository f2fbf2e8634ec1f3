"""Realistic wrong calls for the scripted teacher's failed probes: a dropped argument, a parameter under a wrong
name (camelCase, a guessed suffix), a value of the wrong type, an option the tool does not have.

These only *propose* mistakes; whether one fails is decided by running it in the real environment (on a scratch
fork), and the error the environment returns is what the trajectory shows. A wrong *tool* name is not proposed:
the protocol parser rejects it before any environment sees it (``unknown_tool`` violation), so it would teach a
protocol error rather than an environment error.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

MISSING, RENAMED, WRONG_TYPE, EXTRA = "missing_argument", "renamed_argument", "wrong_type", "extra_argument"
PROBE_KINDS = (MISSING, RENAMED, WRONG_TYPE, EXTRA)

# Options a model plausibly guesses for a tool it does not know.
_GUESSED_OPTIONS = (("verbose", True), ("limit", 10), ("format", "json"), ("lang", "en"), ("detailed", True))


@dataclass(frozen=True)
class Probe:
    """One wrong variant of a correct call."""

    kind: str  # one of PROBE_KINDS
    arguments: dict[str, Any]  # the wrong arguments
    param: str  # the parameter concerned (the added option for EXTRA)
    detail: dict[str, Any] = field(default_factory=dict)  # "wrong" (RENAMED: the wrong name), "expected" (WRONG_TYPE: schema type)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def wrong_names(param: str) -> list[str]:
    """Names a model might use for ``param``: camelCase, or a suffix added or dropped."""
    out = []
    if "_" in param.strip("_"):
        out.append(_camel(param))
    for suffix in ("_name", "_id", "_value"):
        if param.endswith(suffix) and len(param) > len(suffix):
            out.append(param[: -len(suffix)])
            break
    else:
        out.append(f"{param}_name")
    return [n for n in out if n != param]


def wrong_value(value: Any, expected: str | None) -> Any:
    """A value of another JSON type that a model plausibly sends instead of ``value``; None when none fits."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)  # a number quoted as a string
    if isinstance(value, str):
        if expected in ("integer", "number"):
            return value + " units" if value else "none"
        return [value]  # a single value wrapped in a list
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)  # a list flattened into one string
    if isinstance(value, dict):
        return json.dumps(value)  # an object sent as a JSON string
    return None


def probe_candidates(arguments: dict[str, Any], schema: dict[str, Any] | None, rng: random.Random) -> list[Probe]:
    """Wrong variants of a call with ``arguments`` to a tool with parameter ``schema``, in a seeded order.

    Dropped or renamed parameters (required ones when the schema marks any) and wrong types come in a seeded
    order of kinds; an unexpected option (the only mistake possible for a tool without parameters) comes last.
    """
    props = (schema or {}).get("properties") or {}
    required = [p for p in (schema or {}).get("required") or [] if p in arguments]
    targets = required or list(arguments)
    missing = [Probe(MISSING, {k: v for k, v in arguments.items() if k != p}, p) for p in targets]
    renamed = [
        Probe(RENAMED, {(wrong if k == p else k): v for k, v in arguments.items()}, p, {"wrong": wrong})
        for p in targets
        for wrong in wrong_names(p)
        if wrong not in props and wrong not in arguments
    ]
    typed: list[Probe] = []
    for p, value in arguments.items():
        expected = (props.get(p) or {}).get("type")
        expected = expected if isinstance(expected, str) else None
        bad = wrong_value(value, expected)
        if bad is not None:
            typed.append(Probe(WRONG_TYPE, {**arguments, p: bad}, p, {"expected": expected}))
    extra = [Probe(EXTRA, {**arguments, k: v}, k) for k, v in _GUESSED_OPTIONS if k not in props and k not in arguments]
    groups = [missing, renamed, typed]
    for group in (*groups, extra):
        rng.shuffle(group)
    rng.shuffle(groups)  # which kind of mistake comes first varies from task to task
    return [p for group in groups for p in group] + extra
