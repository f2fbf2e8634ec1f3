"""Chat messages with tool calls, and their parquet-safe encoding.

In memory (Task records, SFT rows before writing) an assistant tool call is
``{"type": "function", "function": {"name": str, "arguments": dict}}`` - what chat templates such as Qwen2.5's
expect (they ``tojson`` the arguments). Parquet stores nested dicts as structs whose keys are unioned over the
whole column, so argument dicts of different tools would read back with each other's keys set to None (and
mixed value types do not even write). Stored rows therefore carry ``arguments`` as a JSON string (the OpenAI
wire convention); :func:`decode_messages` turns them back into dicts before a chat template is applied.
"""

from __future__ import annotations

import json
from typing import Any


def tool_call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """An assistant ``tool_calls`` entry with dict arguments."""
    return {"type": "function", "function": {"name": name, "arguments": arguments}}


def encode_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of ``messages`` with every tool call's ``arguments`` as a JSON string (for parquet)."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                fn = dict(tc["function"])
                if not isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.dumps(fn.get("arguments", {}), ensure_ascii=False)
                calls.append({**tc, "function": fn})
            m["tool_calls"] = calls
        out.append(m)
    return out


def decode_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Inverse of :func:`encode_messages`, tolerant of rows read back from parquet.

    Parquet's key union gives every message every key; keys whose value is None are dropped again (no chat
    message field is meaningful as null). Arguments that are JSON strings become dicts.
    """
    out = []
    for m in messages:
        m = {k: v for k, v in dict(m).items() if v is not None}
        if m.get("tool_calls") is not None:
            calls = []
            for tc in list(m["tool_calls"]):
                tc = {k: v for k, v in dict(tc).items() if v is not None}
                fn = {k: v for k, v in dict(tc["function"]).items() if v is not None}
                if isinstance(fn.get("arguments"), str):
                    fn["arguments"] = json.loads(fn["arguments"])
                calls.append({**tc, "function": fn})
            m["tool_calls"] = calls
        out.append(m)
    return out
