"""Rebuild a "toolmaster" record from a decoded response, for trajectories the ToolMaster loop did not produce.

verl's ``tool_agent`` (or any other loop) leaves no record in ``extra_fields``. Its response, decoded with
special tokens kept, is a run of assistant turns separated by ChatML context blocks
(``<|im_end|>\\n<|im_start|>user\\n<tool_response>...</tool_response><|im_end|>\\n<|im_start|>assistant\\n``).
Each assistant turn goes through the protocol's own parser (:func:`verl_toolmaster.protocol.parse_turn`).

What the text cannot tell is recorded as such: every well-formed call counts as accepted (``ok``; the
environment's verdict is not in the text), all calls belong to user turn 0, and there are no phase spans,
self-corrections or tool-error counts.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

ASSISTANT_START = "<|im_start|>assistant\n"  # ChatML: opens every assistant turn after the first
TURN_END = "<|im_end|>"  # ChatML: ends a turn
_TOOL_RESPONSE = re.compile(r"<tool_response>\n?(.*?)\n?</tool_response>", re.S)


def record_from_text(text: str, trial_mode: str = "on") -> dict[str, Any]:
    """A version-1 record (agent_io.md) built from the decoded response text."""
    from verl_toolmaster.protocol import parse_turn

    turns: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    violations: Counter[str] = Counter()
    answer: str | None = None
    executed = False
    for chunk in text.split(ASSISTANT_START):
        end = chunk.find(TURN_END)
        turn_text, context = (chunk, "") if end == -1 else (chunk[: end + len(TURN_END)], chunk[end:])
        if not turn_text.strip():
            continue
        parsed = parse_turn(turn_text, trial_mode=trial_mode)
        kinds = list(parsed.violations)
        if parsed.phase == "trial" and executed:
            kinds.append("trial_after_execute")
        executed = executed or parsed.phase == "execute"
        violations.update(kinds)
        turns.append({"phase": parsed.phase, "user_turn": 0, "violation": kinds[0] if kinds else None, "n_calls": len(parsed.valid_calls)})
        if parsed.answer is not None:
            answer = parsed.answer
        if parsed.phase in ("trial", "execute") and parsed.violation is None:
            observations = _TOOL_RESPONSE.findall(context)
            for i, call in enumerate(parsed.valid_calls):
                calls.append(
                    {
                        "phase": parsed.phase,
                        "turn": 0,
                        "name": call.name,
                        "arguments": call.arguments,
                        "ok": True,
                        "error_kind": None,
                        "text": observations[i] if i < len(observations) else "",
                        "latency_s": 0.0,
                    }
                )
    if answer is None:
        violations["answer_missing"] += 1
    return episode_record(trial_mode, [], turns, calls, answer, dict(violations), "text_record", count_errors=False)


def episode_record(trial_mode: str, spans: list, turns: list[dict[str, Any]], calls: list[dict[str, Any]], answer: str | None,
                   violations: dict[str, int], unanswered: str, count_errors: bool = True) -> dict[str, Any]:
    """The agent loop's record (docs/protocol.md) of a one-user-turn episode built outside the loop.

    ``unanswered`` is the termination when ``answer`` is None; ``count_errors`` False leaves ``tool_errors`` at 0
    (calls recovered from text were never executed).
    """
    n_trial = sum(1 for c in calls if c["phase"] == "trial")
    return {
        "version": 1,
        "trial_mode": trial_mode,
        "phase_spans": spans,
        "turns": turns,
        "calls": calls,
        "answers": [answer],
        "counts": {
            "trial_turns": sum(1 for t in turns if t["phase"] == "trial"),
            "execute_turns": sum(1 for t in turns if t["phase"] == "execute"),
            "trial_calls": n_trial,
            "execute_calls": len(calls) - n_trial,
            "tool_errors": sum(1 for c in calls if not c["ok"]) if count_errors else 0,
            "self_corrections": 0,
            "violations": violations,
        },
        "termination": "answered" if answer is not None else unanswered,
    }
