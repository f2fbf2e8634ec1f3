"""Adversarial model output never crashes the parser or the segmentation."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verl_toolmaster.protocol import (
    PHASES,
    SPAN_LABELS,
    VIOLATION_KINDS,
    decode_turn,
    parse_turn,
    phase_spans,
    span_problems,
    tool_call_text,
)

FRAGMENTS = [
    "<trial>", "</trial>", "<execute>", "</execute>", "<answer>", "</answer>", "<tool_call>", "</tool_call>",
    "<think>", "</think>", "<|im_end|>", "<|endoftext|>", '{"name": "add", "arguments": {"a": 1}}', '{"name":',
    '"arguments": [', "}", "{", "\n", " ", "add", "\x00", "\ud7ff", "é", "<trial", "answer>", "\\", '"',
]
fragment_text = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=8)), max_size=40).map("".join)


def _check(turn):
    assert turn.phase in (None, *PHASES)
    assert turn.violation is None or turn.violation in VIOLATION_KINDS
    assert all(c.violation is None or c.violation in VIOLATION_KINDS for c in turn.calls)
    assert turn.span_label in SPAN_LABELS
    json.dumps([c.arguments for c in turn.calls])  # call-log ready


@settings(max_examples=300, deadline=None)
@given(text=fragment_text, mode=st.sampled_from(["on", "off"]), max_calls=st.one_of(st.none(), st.integers(0, 4)))
def test_parse_never_raises(text, mode, max_calls):
    _check(parse_turn(text, trial_mode=mode, tool_names=["add"], max_calls=max_calls))


def test_megabyte_arguments_and_thousands_of_calls():
    big = parse_turn("<execute>x</execute>" + tool_call_text("add", {"blob": "x" * 1_000_000}), tool_names=["add"])
    assert big.violations == [] and len(big.calls[0].arguments["blob"]) == 1_000_000
    many = parse_turn("<execute>x</execute>" + tool_call_text("add", {}) * 5000, tool_names=["add"], max_calls=8)
    assert len(many.calls) == 5000 and many.violations.count("too_many_calls") == 4992
    unclosed = parse_turn("<execute>x</execute>" + "<tool_call>{" * 20000)  # stays linear, see parse.py
    assert unclosed.violation == "unclosed_tag"
    deep = parse_turn("<execute>x</execute><tool_call>" + "[" * 100000 + "</tool_call>")
    assert deep.calls[0].violation == "bad_json"


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ids=st.lists(st.integers(0, 1100), max_size=60), mask=st.lists(st.integers(0, 1), max_size=60))
def test_segmentation_of_random_ids(tiny_tokenizer, ids, mask):
    """Arbitrary ids, including byte pieces that are invalid UTF-8 and ids beyond the vocabulary."""
    n = min(len(ids), len(mask))
    ids, mask = ids[:n], mask[:n]
    _check(parse_turn(decode_turn(ids, tiny_tokenizer)))
    spans = phase_spans(ids, mask, tiny_tokenizer)
    assert span_problems(spans, mask) == []
