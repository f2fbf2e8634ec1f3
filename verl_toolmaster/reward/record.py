"""Finding, checking and reading the agent loop's "toolmaster" record (notes: agent_io.md) for the reward."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .scorers.base import Episode

RECORD_KEY = "toolmaster"
RECORD_VERSION = 1


class RecordError(ValueError):
    """The "toolmaster" extra field is present but does not follow the agent-loop contract."""


def find_record(non_tensor: Mapping[str, Any]) -> Any:
    """The raw record of one sample, or None.

    verl 0.9.1 delivers a trajectory's ``extra_fields`` in two ways: when the agent-loop worker scores each
    trajectory as it finishes (the path ``main_ppo`` uses for rule rewards) they arrive whole as
    ``non_tensor_batch["tool_extra_fields"]``; when the batch is scored afterwards (``RewardLoopManager.
    compute_rm_score``), ``_postprocess`` has made each extra field a column of its own.
    """
    extra = non_tensor.get("tool_extra_fields")
    if isinstance(extra, Mapping) and extra.get(RECORD_KEY) is not None:
        return extra[RECORD_KEY]
    return non_tensor.get(RECORD_KEY)


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise RecordError(f"'{RECORD_KEY}' record: {what}")


_PHASES = frozenset({"trial", "execute"})


def _call_ok(c: Any) -> bool:
    return (
        type(c) is dict
        and c.get("phase") in _PHASES
        and type(c.get("turn")) is int
        and type(c.get("name")) is str
        and isinstance(c.get("arguments"), (dict, str))
        and type(c.get("ok")) is bool
    )


def _call_problem(i: int, c: Any) -> str:
    if not isinstance(c, Mapping):
        return f"calls[{i}] is not a dict"
    if c.get("phase") not in _PHASES:
        return f"calls[{i}].phase must be 'trial' or 'execute', got {c.get('phase')!r}"
    for key, typ, name in (("turn", int, "an int"), ("name", str, "a str"), ("arguments", (dict, str), "a dict or str"), ("ok", bool, "a bool")):
        if not isinstance(c.get(key), typ) or (key == "turn" and isinstance(c.get(key), bool)):
            return f"calls[{i}].{key} must be {name}, got {type(c.get(key)).__name__}"
    return f"calls[{i}] is malformed"


def check_record(raw: Any) -> dict[str, Any]:
    """Parse (JSON string or dict) and check the fields the reward reads; RecordError names the first problem."""
    if isinstance(raw, (str, bytes)):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise RecordError(f"'{RECORD_KEY}' record is not valid JSON: {exc}") from exc
    _need(isinstance(raw, Mapping), f"expected a dict, got {type(raw).__name__}")
    _need(raw.get("version") == RECORD_VERSION, f"version must be {RECORD_VERSION}, got {raw.get('version')!r}")
    for key, typ in (("calls", list), ("turns", list), ("answers", list), ("counts", Mapping), ("phase_spans", list)):
        _need(isinstance(raw.get(key), typ), f"'{key}' must be a {typ.__name__}, got {type(raw.get(key)).__name__}")
    for i, c in enumerate(raw["calls"]):
        if not _call_ok(c):
            raise RecordError(f"'{RECORD_KEY}' record: {_call_problem(i, c)}")
    for i, t in enumerate(raw["turns"]):
        _need((type(t) is dict or isinstance(t, Mapping)) and type(t.get("user_turn")) is int, f"turns[{i}].user_turn must be an int")
    for i, a in enumerate(raw["answers"]):
        _need(a is None or type(a) is str, f"answers[{i}] must be a str or null")
    counts = raw["counts"]
    for key in ("trial_calls", "execute_calls", "self_corrections", "tool_errors"):
        _need(type(counts.get(key)) is int, f"counts.{key} must be an int")
    _need(isinstance(counts.get("violations"), Mapping), "counts.violations must be a dict kind -> count")
    for i, span in enumerate(raw["phase_spans"]):
        _need(isinstance(span, (list, tuple)) and len(span) == 3, f"phase_spans[{i}] must be [phase, start, end]")
    return raw if type(raw) is dict else dict(raw)


def episode_from_record(record: dict[str, Any], response_text: str, env_spec: dict[str, Any] | None) -> Episode:
    return Episode(answers=list(record["answers"]), calls=list(record["calls"]), response_text=response_text, env_spec=env_spec)


def record_from_text(text: str) -> tuple[dict[str, Any] | None, str]:
    """Rebuild a record from the decoded response with the protocol module's parser (see :mod:`.text_record`).

    Used for trajectories that carry no "toolmaster" field (e.g. from verl's ``tool_agent``). Returns
    (record, "") or (None, why) when the protocol module is not available.
    """
    try:
        from .text_record import record_from_text as parse

        import verl_toolmaster.protocol  # noqa: F401  (the parser it relies on)
    except ImportError as exc:
        return None, f"protocol parser unavailable: {exc}"
    return check_record(parse(text)), ""
