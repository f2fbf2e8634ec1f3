"""Names of the protocol: phases, tags, span labels, violation kinds and termination reasons.

Every other module (agent loop, reward, SFT writer, evaluation) imports these names instead of spelling
the strings itself, so a renamed tag changes in one place.
"""

from __future__ import annotations

TRIAL, EXECUTE, ANSWER = "trial", "execute", "answer"
PHASES = (TRIAL, EXECUTE, ANSWER)  # the three phase tags, in protocol order
OBSERVATION = "observation"  # span label of tokens the policy did not sample (response_mask == 0)
UNTAGGED = "untagged"  # span label of sampled tokens of a turn whose phase tag is missing or malformed
SPAN_LABELS = (TRIAL, EXECUTE, ANSWER, OBSERVATION, UNTAGGED)

TOOL_CALL_OPEN, TOOL_CALL_CLOSE = "<tool_call>", "</tool_call>"
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
# Tokens that end an assistant turn in Qwen/ChatML models; text after the first one is ignored.
DEFAULT_STOP_STRINGS = ("<|im_end|>", "<|endoftext|>")

TRIAL_MODES = ("on", "off")


def open_tag(phase: str) -> str:
    return f"<{phase}>"


def close_tag(phase: str) -> str:
    return f"</{phase}>"


# Violation kinds. Turn-level kinds void the whole turn (none of its calls runs); call-level kinds void one
# call (the turn's other calls still run); episode-level kinds are recorded when the episode ends.
TURN_VIOLATIONS = (
    "no_tag",  # the turn has no phase tag (trial_mode on)
    "multiple_tags",  # more than one phase tag, or nested phase tags
    "unclosed_tag",  # a phase tag or <tool_call> opened and never closed (or closed and never opened)
    "misplaced_tag",  # text or a tool call before the phase tag, or a tool call inside it
    "calls_in_answer",  # <answer> together with tool calls
    "no_calls_in_trial",  # <trial> without any tool call
    "no_calls_in_execute",  # <execute> without any tool call
    "trial_after_execute",  # <trial> after an <execute> turn of the same user turn (unless re-trials are allowed)
    "trial_budget",  # <trial> after the trial-turn budget was spent
    "execute_budget",  # <execute> after the execute-turn budget was spent
)
CALL_VIOLATIONS = (
    "bad_json",  # a <tool_call> body that is not {"name": str, "arguments": object}
    "unknown_tool",  # a call to a tool this task does not have
    "too_many_calls",  # calls beyond the per-turn call budget (the excess calls do not run)
)
EPISODE_VIOLATIONS = ("answer_missing",)  # the episode ended before every user turn was answered
VIOLATION_KINDS = TURN_VIOLATIONS + CALL_VIOLATIONS + EPISODE_VIOLATIONS

# Why an episode ended (extra_fields["toolmaster"]["termination"]).
TERMINATIONS = (
    "answered",  # every user turn got an accepted <answer>
    "response_budget",  # rollout.response_length tokens used up (a turn may be cut mid-way)
    "turn_budget",  # the assistant-turn budget was used up
    "no_tag_stop",  # a turn with neither phase tag nor tool call ended the episode (no_tag_action: stop)
    "max_violations",  # the violation budget was used up
)
