"""The trial-and-execution protocol, shared by the RL agent loop, the SFT writer and the evaluation harness.

* :mod:`.tags`: phases, tags, span labels, violation kinds, termination reasons.
* :mod:`.prompts`: system instructions (``system_prompt``) and the feedback texts the loop shows the model.
* :mod:`.parse`: one assistant turn (raw text with special tokens, or token ids) -> phase, reasoning, calls.
* :mod:`.segment`: phase spans of a response token sequence.
* :mod:`.render`: protocol turns -> chat messages / exact model text.
* :mod:`.messages`: the row message codec (tool-call arguments as JSON strings in stored rows), shared by the
  data writers and the agent loop.
"""

from .parse import ParsedTurn, ToolCall, decode_turn, parse_turn, parse_turn_ids
from .prompts import SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON, system_prompt
from .render import assistant_message, message_from_parsed, tool_call_text, tool_message, turn_text
from .segment import mask_runs, merge_spans, phase_spans, span_problems
from .tags import (
    ANSWER,
    CALL_VIOLATIONS,
    EPISODE_VIOLATIONS,
    EXECUTE,
    OBSERVATION,
    PHASES,
    SPAN_LABELS,
    TERMINATIONS,
    TRIAL,
    TRIAL_MODES,
    TURN_VIOLATIONS,
    UNTAGGED,
    VIOLATION_KINDS,
)

__all__ = [
    "ANSWER",
    "CALL_VIOLATIONS",
    "EPISODE_VIOLATIONS",
    "EXECUTE",
    "OBSERVATION",
    "PHASES",
    "SPAN_LABELS",
    "SYSTEM_PROMPT_OFF",
    "SYSTEM_PROMPT_ON",
    "TERMINATIONS",
    "TRIAL",
    "TRIAL_MODES",
    "TURN_VIOLATIONS",
    "UNTAGGED",
    "VIOLATION_KINDS",
    "ParsedTurn",
    "ToolCall",
    "assistant_message",
    "decode_turn",
    "mask_runs",
    "merge_spans",
    "message_from_parsed",
    "parse_turn",
    "parse_turn_ids",
    "phase_spans",
    "span_problems",
    "system_prompt",
    "tool_call_text",
    "tool_message",
    "turn_text",
]
