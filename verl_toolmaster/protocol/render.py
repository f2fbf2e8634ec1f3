"""Render protocol turns as chat messages and as the exact text a model should emit.

Used by the SFT writer (messages with ``tool_calls``, arguments as dicts, per verl's SFT dataset), the
evaluation harness and the scripted tests. ``turn_text`` reproduces byte for byte what the Qwen2.5 / Hermes
chat template renders for ``assistant_message`` (without the trailing ``<|im_end|>``).
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from .parse import ParsedTurn
from .tags import PHASES, close_tag, open_tag


def tool_call_text(name: str, arguments: Mapping[str, Any] | str) -> str:
    """One call as the Qwen2.5 template writes it: ``<tool_call>\\n{"name": ..., "arguments": ...}\\n</tool_call>``."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
    return '<tool_call>\n{"name": "' + name + '", "arguments": ' + args + "}\n</tool_call>"


def phase_content(phase: str, body: str) -> str:
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    return f"{open_tag(phase)}{body}{close_tag(phase)}"


def turn_text(phase: str, body: str, calls: Iterable[Mapping[str, Any]] = ()) -> str:
    """The assistant turn's text (what the policy samples, minus the end-of-turn token)."""
    text = phase_content(phase, body)
    return text + "".join("\n" + tool_call_text(c["name"], c["arguments"]) for c in calls)


def assistant_message(phase: str, body: str, calls: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """A chat message for one protocol turn; ``calls`` are ``{"name", "arguments"}`` with dict arguments."""
    message: dict[str, Any] = {"role": "assistant", "content": phase_content(phase, body)}
    calls = list(calls)
    if calls:
        message["tool_calls"] = [_tool_call_entry(c["name"], c["arguments"]) for c in calls]
    return message


def message_from_parsed(turn: ParsedTurn) -> dict[str, Any]:
    """The chat message for a parsed turn, whatever its validity: every ``<tool_call>`` block becomes an entry
    of ``tool_calls`` (invalid arguments stay the raw string), the rest of the text is ``content``."""
    message: dict[str, Any] = {"role": "assistant"}
    if turn.calls:
        message["content"] = turn.content.rstrip("\n")
        message["tool_calls"] = [_tool_call_entry(c.name, c.arguments) for c in turn.calls]
    else:
        message["content"] = turn.content
    return message


def tool_message(text: str, name: str | None = None) -> dict[str, Any]:
    """A tool response message (the chat template wraps it in ``<tool_response>``)."""
    message: dict[str, Any] = {"role": "tool", "content": text}
    if name:
        message["name"] = name
    return message


def _tool_call_entry(name: str, arguments: Any) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "arguments": arguments}}
