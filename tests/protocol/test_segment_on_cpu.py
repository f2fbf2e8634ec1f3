"""Phase segmentation of token sequences on the tiny tokenizer."""

from __future__ import annotations

from verl_toolmaster.protocol import mask_runs, merge_spans, phase_spans, span_problems, tool_call_text, turn_text


def _enc(tok, text):
    return tok.encode(text, add_special_tokens=False)


def test_mask_runs():
    assert mask_runs([]) == []
    assert mask_runs([1, 1, 0, 1]) == [(1, 0, 2), (0, 2, 3), (1, 3, 4)]


def test_phase_spans_label_each_turn(tiny_tokenizer):
    tok = tiny_tokenizer
    trial = _enc(tok, turn_text("trial", "p", [{"name": "add", "arguments": {"a": 1}}]) + "<|im_end|>")
    obs = _enc(tok, "\n<|im_start|>user\n<tool_response>\n1\n</tool_response><|im_end|>\n<|im_start|>assistant\n")
    bad = _enc(tok, "no tag here<|im_end|>")
    answer = _enc(tok, "<answer>1</answer><|im_end|>")
    ids = trial + obs + bad + obs + answer
    mask = [1] * len(trial) + [0] * len(obs) + [1] * len(bad) + [0] * len(obs) + [1] * len(answer)
    spans = phase_spans(ids, mask, tok)
    a, b = len(trial), len(trial) + len(obs)
    assert spans[0] == ["trial", 0, a] and spans[1] == ["observation", a, b]
    assert [s[0] for s in spans] == ["trial", "observation", "untagged", "observation", "answer"]
    assert span_problems(spans, mask) == []
    off = phase_spans(ids, mask, tok, trial_mode="off")
    assert [s[0] for s in off] == ["execute", "observation", "answer", "observation", "answer"]


def test_span_problems_detects_each_defect():
    mask = [1, 1, 0, 0, 1]
    good = [["trial", 0, 2], ["observation", 2, 4], ["answer", 4, 5]]
    assert span_problems(good, mask) == []
    assert span_problems(good[:2], mask)  # does not cover the end
    assert span_problems([["trial", 0, 3], ["observation", 3, 4], ["answer", 4, 5]], mask)  # trial over a 0
    assert span_problems([["trial", 0, 2], ["answer", 2, 4], ["answer", 4, 5]], mask)  # sampled label over 0s
    assert span_problems([["trial", 0, 2], ["observation", 3, 4], ["answer", 4, 5]], mask)  # gap
    assert span_problems([["bogus", 0, 2], ["observation", 2, 4], ["answer", 4, 5]], mask)


def test_merge_spans():
    assert merge_spans([["a", 0, 1], ["a", 1, 3], ["b", 3, 3], ["b", 3, 4]]) == [["a", 0, 3], ["b", 3, 4]]


def test_tool_call_text_matches_the_chat_template(tiny_tokenizer):
    calls = [{"type": "function", "function": {"name": "add", "arguments": {"a": 1, "s": "é"}}}]
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<execute>p</execute>", "tool_calls": calls}]
    rendered = tiny_tokenizer.apply_chat_template(messages, tokenize=False)
    expected = "<|im_start|>assistant\n" + turn_text("execute", "p", [{"name": "add", "arguments": {"a": 1, "s": "é"}}])
    assert expected + "<|im_end|>\n" in rendered
    assert tool_call_text("add", {"a": 1, "s": "é"}) in rendered
