"""Phase segmentation of a response token sequence.

A response is a sequence of maximal runs of ``response_mask``: each run of 1s is one assistant turn (the
tokens the policy sampled), each run of 0s is context the loop appended (tool responses, feedback, follow-up
user messages, chat-template glue). ``phase_spans`` labels them from the token ids alone, so the reward
manager and the viewer can re-derive what the agent loop recorded in ``extra_fields``.
"""

from __future__ import annotations

from typing import Any, Sequence

from .parse import decode_turn, parse_turn
from .tags import OBSERVATION, SPAN_LABELS

Span = list  # [label: str, start: int, end: int], end exclusive (a list so it survives JSON round trips)


def mask_runs(mask: Sequence[int]) -> list[tuple[int, int, int]]:
    """Maximal runs ``(value, start, end)`` of a 0/1 mask."""
    runs: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(mask) + 1):
        if i == len(mask) or mask[i] != mask[start]:
            runs.append((int(mask[start]), start, i))
            start = i
    return runs


def phase_spans(
    response_ids: Sequence[int], response_mask: Sequence[int], tokenizer: Any, *, trial_mode: str = "on"
) -> list[Span]:
    """Label every response position: mask-0 runs are ``observation``, each mask-1 run is parsed as one turn."""
    if len(response_ids) != len(response_mask):
        raise ValueError(f"response_ids ({len(response_ids)}) and response_mask ({len(response_mask)}) differ in length")
    spans: list[Span] = []
    for value, start, end in mask_runs(response_mask):
        if value == 0:
            spans.append([OBSERVATION, start, end])
        else:
            turn = parse_turn(decode_turn(response_ids[start:end], tokenizer), trial_mode=trial_mode)
            spans.append([turn.span_label, start, end])
    return merge_spans(spans)


def merge_spans(spans: Sequence[Span]) -> list[Span]:
    """Drop empty spans and join neighbours with the same label."""
    merged: list[Span] = []
    for label, start, end in spans:
        if end <= start:
            continue
        if merged and merged[-1][0] == label and merged[-1][2] == start:
            merged[-1][2] = end
        else:
            merged.append([label, start, end])
    return merged


def span_problems(spans: Sequence[Span], response_mask: Sequence[int]) -> list[str]:
    """Why ``spans`` do not describe ``response_mask`` (empty when they do): they must be contiguous, cover
    every position exactly once, use known labels, and ``observation`` must be exactly the mask-0 positions."""
    problems: list[str] = []
    pos = 0
    for label, start, end in spans:
        if label not in SPAN_LABELS:
            problems.append(f"unknown label {label!r} at [{start}, {end})")
        if start != pos:
            problems.append(f"span [{start}, {end}) starts at {start}, expected {pos}")
        if end <= start:
            problems.append(f"empty span [{start}, {end})")
        expected = 0 if label == OBSERVATION else 1
        wrong = [i for i in range(start, min(end, len(response_mask))) if response_mask[i] != expected]
        if wrong:
            problems.append(f"{label} span [{start}, {end}) has mask != {expected} at {wrong[:5]}")
        pos = end
    if pos != len(response_mask):
        problems.append(f"spans end at {pos}, the response has {len(response_mask)} tokens")
    return problems
