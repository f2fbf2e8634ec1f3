"""The toyworld environment: true interface behind possibly stale docs, informative errors, forks, bad specs."""

from __future__ import annotations

import asyncio
import json

import pytest

from verl_toolmaster.envs import make_env
from verl_toolmaster.envs.toyworld import MAX_ABS_INT, ToyWorldEnv

ADD = {"op": "add", "params": [["bank", "integer"], ["yang", "integer"]], "label": "sum"}
LOOKUP = {"op": "lookup", "params": [["peter", "string"]], "label": "code", "table": {"open": "left", "free": "down"}}


def _schema(name, props, desc="Returns the sum of two integers."):
    return {"type": "function", "function": {"name": name, "description": desc,
            "parameters": {"type": "object", "properties": {p: {"type": t} for p, t in props}, "required": [p for p, _ in props]}}}


def spec():
    # "age" is documented with a stale name ("player" for the real "bank")
    return {"kind": "toyworld", "tools": [_schema("age", [("player", "integer"), ("yang", "integer")]), _schema("tree", [("peter", "string")], "Returns the code of an item.")],
            "impl": {"age": ADD, "tree": LOOKUP}}


def call(env, name, args):
    return asyncio.run(env.call(name, args))


def test_true_interface_answers_and_is_deterministic():
    env = make_env(spec())
    assert isinstance(env, ToyWorldEnv)
    first = call(env, "age", {"bank": 3, "yang": 4})
    assert first.ok and json.loads(first.text) == {"sum": 7}
    assert call(env, "age", '{"bank": 3, "yang": 4}').text == first.text  # JSON-string arguments too
    assert call(env, "tree", {"peter": "open"}).text == '{"code": "left"}'
    assert env.metrics.calls == 3 and env.metrics.errors == {}


def test_documented_call_fails_with_the_real_usage():
    env = make_env(spec())
    obs = call(env, "age", {"player": 3, "yang": 4})  # what a reader of the schema writes
    assert not obs.ok and obs.error_kind == "schema"
    assert obs.text == 'Error: unknown argument "player". Usage: age {"bank": "integer", "yang": "integer"} returns "sum".'


@pytest.mark.parametrize(
    "name, args, kind, fragment",
    [
        ("age", {"bank": 3}, "schema", 'missing argument "yang"'),
        ("age", {"bank": "3", "yang": 4}, "schema", '"bank" must be an integer, got string'),
        ("age", {"bank": True, "yang": 4}, "schema", '"bank" must be an integer, got boolean'),
        ("age", {"bank": MAX_ABS_INT + 1, "yang": 1}, "schema", '"bank" must be between'),
        ("tree", {"peter": 5}, "schema", '"peter" must be a string, got integer'),
        ("tree", {"peter": "x" * 41}, "schema", "1 to 40 characters"),
        ("tree", {"peter": "zzz"}, "exception", 'no entry for "zzz". Known: "free", "open"'),
        ("age", "{not json", "bad_arguments", "not valid JSON"),
        ("age", [1, 2], "bad_arguments", "must be a JSON object"),
        ("nope", {}, "unknown_tool", "Available tools: age, tree"),
    ],
)
def test_failures_are_informative_observations(name, args, kind, fragment):
    obs = call(make_env(spec()), name, args)
    assert not obs.ok and obs.error_kind == kind and fragment in obs.text, obs.text
    if kind == "schema":  # every argument error teaches the real interface
        assert "Usage: " in obs.text and ('"integer"' in obs.text or '"string"' in obs.text)


def test_repeat_count_is_bounded():
    env = make_env({"kind": "toyworld", "tools": [_schema("lee", [("a", "string"), ("b", "integer")], "Repeats a word.")],
                    "impl": {"lee": {"op": "repeat", "params": [["a", "string"], ["b", "integer"]], "label": "repeated"}}})
    assert call(env, "lee", {"a": "open", "b": 3}).text == '{"repeated": "open open open"}'
    bad = call(env, "lee", {"a": "open", "b": 10**6})
    assert not bad.ok and bad.error_kind == "exception" and "between 1 and 5" in bad.text


def test_fork_is_an_independent_copy_with_the_same_tools():
    env = make_env(spec())
    twin = env.fork()
    assert twin is not env and twin.tools() == env.tools()
    assert call(twin, "age", {"bank": 1, "yang": 1}).ok
    assert twin.metrics.calls == 1 and env.metrics.calls == 0  # counters are per copy
    assert env.positional_params("age") == ["bank", "yang"]  # the true order, not the schema's names


@pytest.mark.parametrize(
    "impl, fragment",
    [
        ({"age": {**ADD, "op": "divide"}, "tree": LOOKUP}, "tool 'age' has unknown op 'divide'"),
        ({"age": {**ADD, "params": [["bank", "string"], ["yang", "integer"]]}, "tree": LOOKUP}, "op 'add' takes parameter types"),
        ({"age": {**ADD, "params": [["x", "integer"], ["x", "integer"]]}, "tree": LOOKUP}, "must be unique"),
        ({"age": ADD, "tree": {**LOOKUP, "table": {}}}, "lookup tool 'tree' needs a non-empty 'table'"),
        ({"age": {**ADD, "table": {"a": "b"}}, "tree": LOOKUP}, "only lookup tools have a 'table'"),
        ({"age": ADD}, "no impl for tools ['tree']"),
    ],
)
def test_bad_specs_name_the_tool_and_the_problem(impl, fragment):
    with pytest.raises(ValueError, match="toyworld environment") as e:
        make_env({**spec(), "impl": impl})
    assert fragment in str(e.value)


def test_stateful_fork_isolates_the_real_accounts(tasks):
    """Levels 4-5: calls on a fork (trials) change the fork's balances only; the real ones change with execute
    calls, and replay_accounts recomputes them from the execute calls of a call log, ignoring trials."""
    from verl_toolmaster.envs.toyworld import ToyWorldEnv, replay_accounts

    stateful = [t for t in tasks["train"] if t.tags["level"] in (4, 5)]
    assert {t.tags["level"] for t in stateful} == {4, 5}
    for t in stateful:
        env = ToyWorldEnv(t.env)
        before = dict(env.accounts)
        call = t.gold[0][0][0]
        fork = env.fork()
        assert asyncio.run(fork.call(call["name"], call["arguments"])).ok
        assert env.accounts == before and fork.accounts != before
        assert asyncio.run(env.call(call["name"], call["arguments"])).ok
        assert env.accounts == t.ground_truth["accounts"] == fork.accounts
        log = [{"phase": "trial", **call}, {"phase": "execute", **call}, {"phase": "execute", "name": call["name"], "arguments": "not json"}]
        assert replay_accounts(t.env, log) == t.ground_truth["accounts"]
        assert replay_accounts(t.env, log[:1]) == before
