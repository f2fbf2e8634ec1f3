"""The protocol's words: system instructions and the feedback the loop shows the model.

The system text is configurable (``system_prompt(trial_mode, text=...)``); the defaults below are the
project's concrete choice where the paper is silent. The tool schemas are not part of this text: the chat
template renders them (Qwen2.5 appends a ``# Tools`` block to the system message).
"""

from __future__ import annotations

import json
from typing import Any

from .tags import TRIAL_MODES

SYSTEM_PROMPT_ON = """\
You solve the user's request with the tools listed below. The tools may be new to you, so learn how they \
behave by trying them before you rely on them.

Every reply starts with exactly one phase tag:
<trial>why this probe</trial> followed by one or more tool calls: probe a tool to learn what it does, which \
arguments it accepts and what it returns. Trials run on a scratch copy of the environment; anything they \
change is thrown away.
<execute>your plan</execute> followed by one or more tool calls: work toward the answer with what the trials \
showed. These calls act on the real environment. If a call fails, read the error, correct the call and retry.
<answer>your final answer</answer> with no tool calls: ends your work on the request.

Rules:
- Trials come first, and you may skip them. Once you have sent an <execute> reply, do not go back to <trial>.
- Write each call as <tool_call>{"name": <tool name>, "arguments": {<arguments as a JSON object>}}</tool_call>, \
after the closing phase tag.
- Trials, executions and tool calls per reply are limited; you are told when a budget is spent.
- The user may send another request after your answer; handle it the same way, starting again with trials \
if they help."""

SYSTEM_PROMPT_OFF = """\
You solve the user's request with the tools listed below.

Call a tool by writing <tool_call>{"name": <tool name>, "arguments": {<arguments as a JSON object>}}</tool_call>; \
you may make several calls in one reply. The results come back as tool responses. If a call fails, read the \
error, correct the call and retry. When you are done, reply with <answer>your final answer</answer> and no \
tool calls. The user may send another request after your answer; handle it the same way."""


def system_prompt(trial_mode: str = "on", text: str | None = None) -> str:
    """The system instructions for ``trial_mode`` ("on" or "off"); ``text`` replaces the default verbatim."""
    if trial_mode not in TRIAL_MODES:
        raise ValueError(f"trial_mode must be one of {TRIAL_MODES}, got {trial_mode!r}")
    if text is not None:
        return text
    return SYSTEM_PROMPT_ON if trial_mode == "on" else SYSTEM_PROMPT_OFF


# Turn-level violations the loop explains in a feedback message (the parser's own error is appended).
_VIOLATION_HINTS = {
    "no_tag": "Start every reply with exactly one of <trial>...</trial>, <execute>...</execute> or <answer>...</answer>.",
    "multiple_tags": "Use exactly one phase tag per reply.",
    "unclosed_tag": "Close every tag you open.",
    "misplaced_tag": "Open the reply with the phase tag and put tool calls after its closing tag.",
    "calls_in_answer": "Either call tools in a <trial> or <execute> reply, or answer without tool calls.",
    "no_calls_in_trial": "Add the tool calls you want to try after </trial>.",
    "no_calls_in_execute": "Add tool calls after </execute>, or give your <answer>.",
    "trial_after_execute": "You already executed; continue with <execute> or give your <answer>.",
    "trial_budget": "No trials are left; continue with <execute> or give your <answer>.",
    "execute_budget": "No executions are left; give your <answer> now.",
}


def violation_feedback(kind: str, error: str | None = None) -> str:
    """Feedback for a turn-level violation: what was wrong and how to go on. Nothing of the turn ran."""
    hint = _VIOLATION_HINTS.get(kind, "")
    what = f" {error[0].upper()}{error[1:]}" if error else ""
    return f"Protocol error ({kind}):{what} Nothing in that reply was run. {hint}".rstrip()


def not_run_text(reason: str) -> str:
    """Tool response for a call that was not run."""
    return f"Not run: {reason}"


def trial_budget_notice(n: int) -> str:
    return f"Trial budget spent ({n} trial replies). Continue with <execute> or give your <answer>."


def execute_budget_notice(n: int) -> str:
    return f"Execution budget spent ({n} execute replies). Give your <answer> now."


def new_tools_note(schemas: list[dict[str, Any]]) -> str:
    """Prefix of a follow-up user message that reveals tools added at this user turn (same layout as Qwen's)."""
    lines = "\n".join(json.dumps(s, ensure_ascii=False) for s in schemas)
    return f"New tools are available for this request:\n<tools>\n{lines}\n</tools>\n\n"
