"""The loop against the real environment kinds ("python" sandbox, "schema" validation, perturbation wrapper)."""

from __future__ import annotations

from loop_harness import T, assert_token_invariants, make_config, row, run_rows

from verl_toolmaster.envs import make_env

LOOKUP = {
    "type": "function",
    "function": {
        "name": "lookup",
        "description": "Look a word up.",
        "parameters": {"type": "object", "properties": {"word": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["word"]},
    },
}
ADD = {
    "type": "function",
    "function": {
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]},
    },
}
ADD_CODE = "def add(a, b):\n    return a + b\n"


def test_schema_env(base_config):
    spec = {"kind": "schema", "tools": [LOOKUP]}
    script = [
        T("trial", "does it take a number?", ("lookup", {"word": 3})),
        T("execute", "a string then", ("lookup", {"word": "tea", "limit": 2})),
        T("answer", "ok"),
    ]
    run = run_rows(make_config(base_config), [row("s", spec)], {"s": script})
    info = run.info()
    assert [(c["phase"], c["ok"], c["error_kind"]) for c in info["calls"]] == [("trial", False, "schema"), ("execute", True, None)]
    assert "word" in info["calls"][0]["text"] and "Call accepted: lookup" in info["calls"][1]["text"]
    assert info["counts"]["self_corrections"] == 1 and info["termination"] == "answered"
    assert '"name": "lookup"' in run.server.prompts["s"][0]  # the task's tools are in this sample's prompt
    assert_token_invariants(run, 0, "s")


def test_python_env_sandbox(base_config):
    spec = {"kind": "python", "tools": [ADD], "code": {"add": ADD_CODE}}
    script = [
        T("trial", "probe with strings", ("add", {"a": "x", "b": 1})),
        T("execute", "numbers", ("add", {"a": 2, "b": 40})),
        T("answer", "42"),
    ]
    run = run_rows(make_config(base_config), [row("p", spec)], {"p": script})
    info = run.info()
    assert [(c["phase"], c["ok"]) for c in info["calls"]] == [("trial", False), ("execute", True)]
    assert info["calls"][1]["text"] == "42"
    assert info["answers"] == ["42"]
    assert_token_invariants(run, 0, "p")


def test_perturbed_tools_are_logged_canonically(base_config):
    spec = {"kind": "python", "tools": [ADD], "code": {"add": ADD_CODE}, "perturb": {"seed": 3}}
    env = make_env(spec)
    (surface,) = env.tools()
    name = surface["function"]["name"]
    params = list(surface["function"]["parameters"]["properties"])
    assert name != "add"
    real_name, real_args = env.canonical(name, {params[0]: 1, params[1]: 2})
    assert real_name == "add" and sorted(real_args) == ["a", "b"]
    script = [T("execute", "disguised", (name, {params[0]: 1, params[1]: 2})), T("answer", "3")]
    run = run_rows(make_config(base_config), [row("q", spec)], {"q": script})
    (call,) = run.info()["calls"]
    assert (call["name"], call["called_name"], call["ok"], call["text"]) == ("add", name, True, "3")
    assert sorted(call["arguments"]) == ["a", "b"] and call["called_arguments"] == {params[0]: 1, params[1]: 2}
    assert f'"name": "{name}"' in run.server.prompts["q"][0] and '"name": "add"' not in run.server.prompts["q"][0]
