"""Random and adversarial policy output never crashes the loop; every trajectory ends with a termination reason."""

from __future__ import annotations

import json
import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from loop_harness import EOS, CounterEnv, T, assert_token_invariants, make_config, row, run_rows

from verl_toolmaster.protocol import TERMINATIONS, VIOLATION_KINDS, span_problems, tool_call_text

SPEC = {"kind": "tm_test_counter"}
FRAGMENTS = [
    "<trial>", "</trial>", "<execute>", "</execute>", "<answer>", "</answer>", "<tool_call>", "</tool_call>",
    "<think>", "</think>", EOS, "<|endoftext|>", "<|im_start|>", "<tool_response>", "\n", " why ",
    tool_call_text("incr", {"by": 1}), tool_call_text("get", {}), tool_call_text("nope", {}),
    tool_call_text("slow", {"s": 0.01}), tool_call_text("incr", {"by": "x"}), '{"name": "incr", "arguments": {',
    T("trial", "p", ("incr", {"by": 2})), T("execute", "e", ("get", {})), T("answer", "a"), "é\x00\u2028",
]
text_turn = st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=6)), max_size=12).map("".join)
ids_turn = st.lists(st.integers(0, 1100), max_size=40)  # byte pieces (invalid UTF-8 runs) and ids past the vocab
script = st.lists(st.one_of(text_turn, text_turn, ids_turn), min_size=1, max_size=6)


def check_info(run, i, key, mode="on"):
    info = run.info(i)
    json.dumps(info)  # travels through Ray / TransferQueue as plain data
    assert info["termination"] in TERMINATIONS
    assert set(info["counts"]["violations"]) <= set(VIOLATION_KINDS)
    assert span_problems(info["phase_spans"], run.response(i)[1]) == []
    assert len(info["answers"]) == 1
    assert_token_invariants(run, i, key, trial_mode=mode)


# No shrinking: each example drives a whole batch through the worker; the failing example is printed as is.
@settings(max_examples=6, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scripts=st.lists(script, min_size=12, max_size=12), mode=st.sampled_from(["on", "off"]))
def test_random_turns(request, scripts, mode):
    base_config = request.getfixturevalue("base_config")  # not an argument: hypothesis would print all of it
    CounterEnv.created.clear()
    cfg = make_config(base_config, response_length=400, custom={"trial_mode": mode, "max_turns": 6, "tool_timeout_s": 2.0})
    keys = [f"f{i}" for i in range(len(scripts))]
    rows = [row(k, SPEC, index=i, trial_mode=mode) for i, k in enumerate(keys)]
    run = run_rows(cfg, rows, dict(zip(keys, scripts)))
    for i, k in enumerate(keys):
        check_info(run, i, k, mode)
    assert CounterEnv.created and all(e.closed for e in CounterEnv.created)


def test_megabyte_arguments_and_thousands_of_calls(base_config):
    huge = T("execute", "a megabyte", ("incr", {"by": 1, "blob": "ab" * 500_000}))
    many = "<execute>spam</execute>" + ("\n" + tool_call_text("get", {})) * 3000 + EOS
    nested = "<trial>deep</trial><tool_call>" + "[" * 50_000 + "</tool_call>" + EOS
    scripts = {"huge": [huge, T("answer", "1")], "many": [many, T("answer", "0")], "nested": [nested, T("answer", "0")]}
    cfg = make_config(base_config, response_length=600_000)
    t0 = time.perf_counter()
    run = run_rows(cfg, [row(k, SPEC, index=i) for i, k in enumerate(scripts)], scripts)
    elapsed = time.perf_counter() - t0
    for i, k in enumerate(scripts):
        check_info(run, i, k)
    huge_info, many_info, nested_info = (run.info(i) for i in range(3))
    assert huge_info["termination"] == "answered" and huge_info["calls"][0]["ok"]
    assert len(huge_info["calls"][0]["arguments"]["blob"]) == 1_000_000
    assert many_info["counts"]["violations"] == {"too_many_calls": 1} and len(many_info["calls"]) == 8
    assert nested_info["counts"]["violations"] == {"bad_json": 1}
    assert elapsed < 120, elapsed
