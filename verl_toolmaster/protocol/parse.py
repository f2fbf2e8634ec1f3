"""Parse one assistant turn (raw text WITH special tokens) into phase, reasoning and tool calls.

The parser never raises on model output: every malformation becomes a violation kind from
:mod:`verl_toolmaster.protocol.tags` plus a message the model can correct from.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from .tags import (
    ANSWER,
    DEFAULT_STOP_STRINGS,
    EXECUTE,
    TOOL_CALL_CLOSE,
    TOOL_CALL_OPEN,
    TRIAL,
    TRIAL_MODES,
    UNTAGGED,
)

_PHASE_RE = re.compile(r"<(/?)(trial|execute|answer)>")
_THINK_RE = re.compile(r"\s*<think>(.*?)</think>", re.S)
_MAX_LISTED = 30  # tool names listed in an unknown_tool error


@dataclass
class ToolCall:
    """One ``<tool_call>`` block of a turn."""

    name: str  # tool name as the model wrote it ("" when the block had no usable name)
    arguments: dict[str, Any] | str  # a dict when valid; otherwise the raw text that failed to parse
    raw: str  # the text between <tool_call> and </tool_call>
    violation: str | None = None  # "bad_json" | "unknown_tool" | "too_many_calls"; None for a valid call
    error: str | None = None  # why the call is invalid, worded for the model

    @property
    def ok(self) -> bool:
        return self.violation is None


@dataclass
class ParsedTurn:
    """The protocol reading of one assistant turn."""

    text: str  # the decoded turn up to (excluding) the first stop string
    phase: str | None  # "trial" | "execute" | "answer" when the tag structure is valid, else None
    body: str | None  # text inside the phase tag (reasoning, or the answer for <answer>), stripped
    calls: list[ToolCall] = field(default_factory=list)
    violation: str | None = None  # turn-level violation: the turn is void and none of its calls runs
    error: str | None = None  # explanation of the turn-level violation, worded for the model
    stopped: bool = False  # True when a stop string (EOS) ended the turn
    thinking: str | None = None  # content of a leading <think>...</think> block, if any
    content: str = ""  # the turn with tool-call blocks removed (the chat template's `content`)

    @property
    def answer(self) -> str | None:
        """The accepted answer text, or None when this is not a valid answer turn."""
        return self.body if self.phase == ANSWER and self.violation is None else None

    @property
    def violations(self) -> list[str]:
        """All violations of the turn: the turn-level one first, then one per invalid call."""
        kinds = [self.violation] if self.violation else []
        return kinds + [c.violation for c in self.calls if c.violation]

    @property
    def valid_calls(self) -> list[ToolCall]:
        return [c for c in self.calls if c.ok]

    @property
    def span_label(self) -> str:
        """Label of this turn's sampled tokens in the phase spans."""
        return self.phase if self.phase else UNTAGGED


def decode_turn(token_ids: Sequence[int], tokenizer: Any) -> str:
    """Decode sampled ids keeping special tokens (the protocol tags live next to them)."""
    return tokenizer.decode(list(token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)


def parse_turn_ids(token_ids: Sequence[int], tokenizer: Any, **kwargs: Any) -> ParsedTurn:
    """:func:`parse_turn` on token ids (decoded with special tokens kept)."""
    return parse_turn(decode_turn(token_ids, tokenizer), **kwargs)


def parse_turn(
    text: str,
    *,
    trial_mode: str = "on",
    tool_names: Iterable[str] | None = None,
    max_calls: int | None = None,
    stop_strings: Sequence[str] = DEFAULT_STOP_STRINGS,
) -> ParsedTurn:
    """Parse one assistant turn.

    Args:
        text: the turn decoded with special tokens kept; anything after the first stop string is ignored.
        trial_mode: "on" requires exactly one phase tag opening the turn; "off" infers the phase
            (tool calls -> execute, none -> answer, the answer being the inside of ``<answer>`` if present).
        tool_names: the task's callable tools; calls to other names get ``unknown_tool``. None skips the check.
        max_calls: per-turn call budget; calls beyond it get ``too_many_calls``. None means unlimited.
    """
    if trial_mode not in TRIAL_MODES:
        raise ValueError(f"trial_mode must be one of {TRIAL_MODES}, got {trial_mode!r}")
    cut, stopped = len(text), False
    for s in stop_strings:
        i = text.find(s)
        if i != -1 and i < cut:
            cut, stopped = i, True
    text = text[:cut]

    thinking, start = None, 0
    m = _THINK_RE.match(text)
    if m:
        thinking, start = m.group(1), m.end()

    # Cut the tool-call blocks out; remember where each sat in the remaining prose.
    pieces: list[str] = []
    raws: list[str] = []
    offsets: list[int] = []
    prose_len, last = 0, start
    while True:  # str.find instead of a lazy regex: stays linear with thousands of unclosed <tool_call>
        o = text.find(TOOL_CALL_OPEN, last)
        c = text.find(TOOL_CALL_CLOSE, o + len(TOOL_CALL_OPEN)) if o != -1 else -1
        if c == -1:
            break
        piece = text[last:o]
        pieces.append(piece)
        prose_len += len(piece)
        offsets.append(prose_len)
        raws.append(text[o + len(TOOL_CALL_OPEN) : c])
        last = c + len(TOOL_CALL_CLOSE)
    pieces.append(text[last:])
    prose = "".join(pieces)
    content = text[:start] + prose

    turn = ParsedTurn(text=text, phase=None, body=None, stopped=stopped, thinking=thinking, content=content)
    names = set(tool_names) if tool_names is not None else None
    turn.calls = [_parse_call(raw, i, names, max_calls) for i, raw in enumerate(raws)]

    if TOOL_CALL_OPEN in prose or TOOL_CALL_CLOSE in prose:
        which = TOOL_CALL_OPEN if TOOL_CALL_OPEN in prose else TOOL_CALL_CLOSE
        partner = TOOL_CALL_CLOSE if which == TOOL_CALL_OPEN else TOOL_CALL_OPEN
        return _void(turn, "unclosed_tag", f"a {which} has no matching {partner}.")

    if trial_mode == "off":
        return _infer_phase(turn, prose)

    tags = list(_PHASE_RE.finditer(prose))
    opens = [t for t in tags if not t.group(1)]
    closes = [t for t in tags if t.group(1)]
    if not tags:
        return _void(turn, "no_tag", "the reply has no phase tag.")
    if len(opens) > 1 or len(closes) > 1:
        found = ", ".join(t.group(0) for t in tags)
        return _void(turn, "multiple_tags", f"the reply has more than one phase tag ({found}).")
    if not opens or not closes:
        t = tags[0]
        what = f"{t.group(0)} is never closed" if opens else f"{t.group(0)} has no opening tag"
        return _void(turn, "unclosed_tag", f"{what}.")
    o, c = opens[0], closes[0]
    if c.start() < o.start() or o.group(2) != c.group(2):
        return _void(turn, "unclosed_tag", f"{o.group(0)} is closed by {c.group(0)}.")
    if prose[: o.start()].strip():
        return _void(turn, "misplaced_tag", f"there is text before {o.group(0)}; the phase tag must open the reply.")
    if any(off <= o.start() for off in offsets):
        return _void(turn, "misplaced_tag", f"a tool call comes before {o.group(0)}; calls go after {c.group(0)}.")
    if any(o.end() <= off <= c.start() for off in offsets):
        return _void(turn, "misplaced_tag", f"a tool call is inside {o.group(0)}; calls go after {c.group(0)}.")

    phase = o.group(2)
    turn.phase, turn.body = phase, prose[o.end() : c.start()].strip()
    if phase == ANSWER and turn.calls:
        turn.violation, turn.error = "calls_in_answer", "an <answer> reply must not contain tool calls."
    elif phase == TRIAL and not turn.calls:
        turn.violation, turn.error = "no_calls_in_trial", "a <trial> reply must contain at least one tool call."
    elif phase == EXECUTE and not turn.calls:
        turn.violation, turn.error = "no_calls_in_execute", "an <execute> reply must contain at least one tool call."
    return turn


def _void(turn: ParsedTurn, kind: str, error: str) -> ParsedTurn:
    turn.phase, turn.body, turn.violation, turn.error = None, None, kind, error
    return turn


def _infer_phase(turn: ParsedTurn, prose: str) -> ParsedTurn:
    """trial_mode off: calls make an execute turn, no calls an answer turn; phase tags are optional."""
    if turn.calls:
        turn.phase, turn.body = EXECUTE, prose.strip()
        return turn
    tags = list(_PHASE_RE.finditer(prose))
    if len(tags) == 2 and tags[0].group(0) == "<answer>" and tags[1].group(0) == "</answer>":
        turn.phase, turn.body = ANSWER, prose[tags[0].end() : tags[1].start()].strip()
    else:
        turn.phase, turn.body = ANSWER, prose.strip()
    return turn


def _parse_call(raw: str, index: int, names: set[str] | None, max_calls: int | None) -> ToolCall:
    call = ToolCall(name="", arguments=raw, raw=raw)
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as e:
        obj, err = None, f"the tool call is not valid JSON ({_short(e)})."
    else:
        err = None
    if obj is not None:
        if not isinstance(obj, dict):
            err = f'the tool call must be a JSON object {{"name": ..., "arguments": {{...}}}}, got {type(obj).__name__}.'
        elif not isinstance(obj.get("name"), str) or not obj["name"]:
            err = 'the tool call has no "name" string.'
        else:
            call.name = obj["name"]
            args = obj.get("arguments", {})
            if isinstance(args, str):  # some models JSON-encode the arguments twice
                try:
                    args = json.loads(args)
                except (ValueError, RecursionError):
                    pass
            if isinstance(args, dict):
                call.arguments = args
            else:
                call.arguments = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
                err = f'"arguments" of {call.name!r} must be a JSON object, got {type(args).__name__}.'
    if max_calls is not None and index >= max_calls:
        call.violation, call.error = "too_many_calls", f"at most {max_calls} tool calls per reply; this one was not run."
    elif err is not None:
        call.violation, call.error = "bad_json", err
    elif names is not None and call.name not in names:
        listed = sorted(names)
        shown = ", ".join(listed[:_MAX_LISTED]) or "none"
        if len(listed) > _MAX_LISTED:
            shown += f" and {len(listed) - _MAX_LISTED} more"
        call.violation, call.error = "unknown_tool", f"unknown tool {call.name!r}. Available tools: {shown}."
    return call


def _short(e: BaseException, limit: int = 120) -> str:
    s = str(e)
    return s if len(s) <= limit else s[:limit] + "..."
