"""Whole episodes through verl's AgentLoopWorker: protocol flow, token masks, one-shot render equality."""

from __future__ import annotations

import copy

import pytest
from loop_harness import EOS, CounterEnv, T, assert_token_invariants, make_config, row, run_rows

from verl_toolmaster.agent_loop import ToolMasterAgentLoop
from verl_toolmaster.protocol import turn_text

@pytest.fixture
def captured(monkeypatch):
    """The loop's final messages and token ids, per trajectory."""
    store = []
    original = ToolMasterAgentLoop._output

    def _output(self, ep):
        store.append({"messages": copy.deepcopy(ep.messages), "prompt_ids": list(ep.prompt_ids), "n_response": len(ep.mask)})
        return original(self, ep)

    monkeypatch.setattr(ToolMasterAgentLoop, "_output", _output)
    return store


def assert_one_shot_render(run, capture, spec):
    """The incremental token sequence equals the chat template applied once to the final messages."""
    tok = run.tokenizer
    tools = CounterEnv(spec).tools()
    CounterEnv.created.pop()  # that helper instance is not part of the episode
    msgs = capture["messages"]
    ends_with_assistant = msgs[-1]["role"] == "assistant"
    full = tok.apply_chat_template(msgs, tools=tools, tokenize=True, add_generation_prompt=not ends_with_assistant)
    full = list(full["input_ids"]) if isinstance(full, dict) or hasattr(full, "keys") else list(full)
    incremental = capture["prompt_ids"]
    if ends_with_assistant:  # the template adds "\n" after the final <|im_end|>; generation stops before it
        assert full[len(incremental):] == tok.encode("\n", add_special_tokens=False)
        full = full[: len(incremental)]
    assert tok.decode(incremental) == tok.decode(full)
    assert incremental == full


SPEC = {"kind": "tm_test_counter"}


def test_trial_execute_answer(base_config, captured):
    scripts = {
        "tea": [
            T("trial", "what does incr return?", ("incr", {"by": 2})),
            T("execute", "now for real", ("incr", {"by": 5}), ("get", {})),
            T("answer", "5"),
        ]
    }
    run = run_rows(make_config(base_config), [row("tea", SPEC)], scripts)
    info = run.info()
    assert info["termination"] == "answered" and info["answers"] == ["5"]
    assert [(c["phase"], c["name"], c["arguments"], c["ok"], c["text"]) for c in info["calls"]] == [
        ("trial", "incr", {"by": 2}, True, "2"),
        ("execute", "incr", {"by": 5}, True, "5"),  # the trial's +2 happened on a fork
        ("execute", "get", {}, True, "5"),
    ]
    c = info["counts"]
    assert (c["trial_turns"], c["execute_turns"], c["trial_calls"], c["execute_calls"], c["tool_errors"]) == (1, 1, 1, 2, 0)
    assert c["violations"] == {}
    assert [t["phase"] for t in info["turns"]] == ["trial", "execute", "answer"]
    assert [s[0] for s in info["phase_spans"]] == ["trial", "observation", "execute", "observation", "answer"]
    assert info["version"] == 1 and info["trial_mode"] == "on"
    assert run.out.non_tensor_batch["__num_turns__"][0] == 3 + 2 + 1
    assert_token_invariants(run, 0, "tea")
    assert_one_shot_render(run, captured[0], SPEC)
    # the observation tokens carry the tool responses; every env (and the fork) got closed
    assert "<tool_response>\n2\n</tool_response>" in run.text()
    assert CounterEnv.created and all(e.closed for e in CounterEnv.created)
    assert [e.is_fork for e in CounterEnv.created] == [False, True]
    # logprobs line up with the mask
    lp = run.out.batch["rollout_log_probs"][0][: len(run.response()[1])].tolist()
    assert all((m == 1) == (p == -0.5) for m, p in zip(run.response()[1], lp))


def test_zero_trials(base_config, captured):
    scripts = {"direct": [T("execute", "go", ("incr", {"by": 1})), T("answer", "1")]}
    run = run_rows(make_config(base_config), [row("direct", SPEC)], scripts)
    info = run.info()
    assert info["termination"] == "answered" and info["counts"]["trial_turns"] == 0
    assert info["counts"]["violations"] == {}
    assert_token_invariants(run, 0, "direct")
    assert_one_shot_render(run, captured[0], SPEC)
    assert [e.is_fork for e in CounterEnv.created] == [False]  # no trial, no fork


def test_fork_isolates_trial_side_effects(base_config):
    scripts = {
        "iso": [
            T("trial", "probe", ("incr", {"by": 100})),
            T("trial", "probe again: trials of one request share a scratch copy", ("incr", {"by": 1})),
            T("execute", "read the real counter", ("get", {})),
            T("answer", "0"),
        ]
    }
    run = run_rows(make_config(base_config), [row("iso", SPEC)], scripts)
    texts = [c["text"] for c in run.info()["calls"]]
    assert texts == ["100", "101", "0"]
    real = [e for e in CounterEnv.created if not e.is_fork]
    assert len(real) == 1 and real[0].value == 0 and real[0].calls == [("get", {})]
    assert all(e.closed for e in CounterEnv.created)


def test_trial_mode_off(base_config, captured):
    scripts = {
        "plain": [
            "I will count.\n" + turn_text("execute", "x", [{"name": "incr", "arguments": {"by": 3}}]).split("\n", 1)[1] + EOS,
            "The count is <answer>3</answer>" + EOS,
        ]
    }
    cfg = make_config(base_config, custom={"trial_mode": "off"})
    run = run_rows(cfg, [row("plain", SPEC, trial_mode="off")], scripts)
    info = run.info()
    assert info["trial_mode"] == "off" and info["termination"] == "answered" and info["answers"] == ["3"]
    assert [(c["phase"], c["text"]) for c in info["calls"]] == [("execute", "3")]
    assert info["counts"]["violations"] == {} and info["counts"]["execute_turns"] == 1
    assert [s[0] for s in info["phase_spans"]] == ["execute", "observation", "answer"]
    assert_token_invariants(run, 0, "plain", trial_mode="off")
    assert_one_shot_render(run, captured[0], SPEC)
    # no fork is ever made without trials
    assert [e.is_fork for e in CounterEnv.created] == [False]


def test_multi_user_turn(base_config, captured):
    spec = {"kind": "tm_test_counter", "turn_tools": {"1": ["reset"]}}
    scripts = {
        "multi": [
            T("execute", "count", ("incr", {"by": 4})),
            T("answer", "4"),
            T("trial", "new tool?", ("reset", {})),
            T("execute", "use it", ("reset", {})),
            T("answer", "0"),
        ]
    }
    run = run_rows(make_config(base_config), [row("multi", spec, follow_up=["now reset it"])], scripts)
    info = run.info()
    assert info["termination"] == "answered" and info["answers"] == ["4", "0"]
    assert [(c["turn"], c["phase"], c["name"], c["text"]) for c in info["calls"]] == [
        (0, "execute", "incr", "4"),
        (1, "trial", "reset", "0"),  # phases restart per user turn: a trial after turn 0's execute is fine
        (1, "execute", "reset", "0"),
    ]
    assert [t["user_turn"] for t in info["turns"]] == [0, 0, 1, 1, 1]
    assert info["counts"]["violations"] == {}
    # the follow-up is a mask-0 user message that also announces the tool revealed at this turn
    prompt_at_turn3 = run.server.prompts["multi"][2]
    assert "New tools are available" in prompt_at_turn3 and '"name": "reset"' in prompt_at_turn3
    assert prompt_at_turn3.rstrip().endswith("now reset it<|im_end|>\n<|im_start|>assistant")
    assert_token_invariants(run, 0, "multi")
    assert_one_shot_render(run, captured[0], spec)


def test_parallel_calls_run_concurrently_and_keep_order(base_config):
    calls = [("slow", {"s": 0.3}), ("incr", {"by": 1}), ("slow", {"s": 0.3}), ("get", {})]
    scripts = {"par": [T("execute", "all at once", *calls), T("answer", "1")]}
    cfg = make_config(base_config, multi_turn={"max_parallel_calls": 4})
    import time

    t0 = time.perf_counter()
    run = run_rows(cfg, [row("par", SPEC)], scripts)
    elapsed = time.perf_counter() - t0
    info = run.info()
    assert [c["name"] for c in info["calls"]] == ["slow", "incr", "slow", "get"]
    assert [c["text"] for c in info["calls"]] == ["slept", "1", "slept", "1"]
    tool_time = run.out.meta_info["metrics"][0]["tool_calls"]
    assert 0.3 <= tool_time < 0.55, tool_time  # two 0.3 s sleeps overlapped
    assert elapsed < 5
    # max_parallel_calls=1 (verl's default): the same calls run one after another
    run = run_rows(make_config(base_config), [row("par", SPEC)], scripts)
    assert run.out.meta_info["metrics"][0]["tool_calls"] >= 0.6


def test_batch_of_mixed_rows_and_yaml_route(base_config):
    """Several trajectories in one batch, one of them through a registry entry carrying `toolmaster:` kwargs."""
    scripts = {
        "a": [T("execute", "x", ("incr", {"by": 1})), T("answer", "1")],
        "b": [T("trial", "x", ("incr", {"by": 1})), T("trial", "again", ("incr", {"by": 1})), T("answer", "2")],
    }
    extra = {"toolmaster_one_trial": {"_target_": "verl_toolmaster.agent_loop.ToolMasterAgentLoop", "name": "toolmaster_one_trial",
                                       "toolmaster": {"max_trial_turns": 1}}}
    rows = [row("a", SPEC, index=0), row("b", SPEC, index=1, agent_name="toolmaster_one_trial")]
    run = run_rows(make_config(base_config), rows, scripts, registry_extra=extra)
    assert run.info(0)["termination"] == "answered"
    b = run.info(1)
    assert b["counts"]["violations"].get("trial_budget") == 1  # second trial over the YAML budget of 1
    assert "Trial budget spent (1 trial replies)" in run.server.prompts["b"][1]
    for i, key in enumerate(["a", "b"]):
        assert_token_invariants(run, i, key)


def test_history_tool_calls_with_json_string_arguments_render_as_objects(base_config):
    # Data rows store history call arguments as JSON strings (parquet-safe); the prompt must show them as
    # objects, exactly as the chat template renders dict arguments, not double-encoded strings.
    r = row("hist", query="continue")
    r["raw_prompt"] = [*r["raw_prompt"],
                       {"role": "assistant", "content": "", "tool_calls": [
                           {"type": "function", "function": {"name": "inc", "arguments": '{"by": 2}'}}]},
                       {"role": "tool", "content": "2"}]
    run = run_rows(make_config(base_config), [r], {"hist": [T("answer", "2")]})
    prompt = run.server.prompts["hist"][0]
    assert '{"name": "inc", "arguments": {"by": 2}}' in prompt
    assert '"arguments": "{' not in prompt
