"""The schema environment: precise jsonschema feedback, plain acknowledgements, BFCL answers validate."""

from __future__ import annotations

import json

import pytest

from verl_toolmaster.envs import make_env

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer"},
                "where": {"type": "object", "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat"]},
                "tags": {"type": "array", "items": {"type": "string"}},
            },
            "required": ["city", "unit"],
        },
    },
}


@pytest.fixture
def env():
    return make_env({"kind": "schema", "tools": [WEATHER]})


async def test_valid_call_is_acknowledged_without_inventing_results(env):
    obs = await env.call("get_weather", {"city": "Paris", "unit": "celsius", "days": 2})
    assert obs.ok and obs.error_kind is None
    assert obs.text == (
        'Call accepted: get_weather({"city": "Paris", "days": 2, "unit": "celsius"}) matches the tool\'s schema. '
        "This tool has no executable backend here, so no result data is returned."
    )
    assert (await env.call("get_weather", '{"city": "Oslo", "unit": "fahrenheit"}')).ok


async def test_every_violation_is_named(env):
    obs = await env.call("get_weather", {"unit": "kelvin", "days": "3", "colour": "red", "where": {"lon": "x"}, "tags": ["a", 1]})
    assert obs.error_kind == "schema" and not obs.ok
    lines = obs.text.splitlines()
    assert lines[0] == "Error: invalid arguments for 'get_weather':"
    assert sorted(lines[1:]) == sorted([
        "- missing required parameter 'city'",
        "- missing required parameter 'where.lat'",
        "- parameter 'days' must be of type integer, got string \"3\"",
        "- parameter 'unit' must be one of [\"celsius\", \"fahrenheit\"], got \"kelvin\"",
        "- parameter 'tags[1]' must be of type string, got integer 1",
        "- parameter 'where.lon' must be of type number, got string \"x\"",
        "- unexpected parameter 'colour' (allowed: city, days, tags, unit, where)",
    ])


async def test_malformed_calls(env):
    assert (await env.call("get_forecast", {})).error_kind == "unknown_tool"
    assert (await env.call("get_weather", "{'city': 'Paris'}")).error_kind == "bad_arguments"
    assert (await env.call("get_weather", ["Paris"])).error_kind == "bad_arguments"
    assert env.metrics.errors == {"unknown_tool": 1, "bad_arguments": 2}


def test_invalid_schema_is_a_clear_error():
    bad = {"name": "broken", "parameters": {"type": "object", "properties": {"x": {"type": "decimal"}}}}
    with pytest.raises(ValueError, match="tool 'broken' has an invalid parameter schema"):
        make_env({"kind": "schema", "tools": [bad]})


def test_fork_shares_validators(env):
    twin = env.fork()
    assert twin.tools() == env.tools() and twin.metrics is not env.metrics


def _answer_args(params: dict, schema: dict) -> dict:
    """A call a BFCL possible answer accepts: the first acceptable value of each parameter the schema has
    ("" means "may be omitted"; answers occasionally list a parameter of another function that way);
    nested objects list acceptable values per key again."""
    props = schema.get("properties") or {}
    out = {}
    for k, values in params.items():
        chosen = [v for v in values if v != ""]
        if k not in props or not chosen:
            continue
        out[k] = _answer_args(chosen[0], props[k]) if isinstance(chosen[0], dict) else chosen[0]
    return out


@pytest.mark.parametrize("category", ["simple_python", "multiple", "parallel", "parallel_multiple", "live_simple", "live_multiple"])
async def test_bfcl_possible_answers_validate_against_bfcl_docs(shared_data, category):
    base = shared_data / "bfcl"
    questions = {q["id"]: q for q in map(json.loads, (base / f"BFCL_v4_{category}.json").read_text().splitlines())}
    answers = [json.loads(x) for x in (base / "possible_answer" / f"BFCL_v4_{category}.json").read_text().splitlines()]
    checked = 0
    for ans in answers:
        docs = {d["name"]: d for d in questions[ans["id"]]["function"]}
        env = make_env({"kind": "schema", "tools": list(docs.values())})
        for call in ans["ground_truth"]:
            (name, params), = call.items()
            obs = await env.call(name, _answer_args(params, docs[name]["parameters"]))
            assert obs.ok, (ans["id"], name, obs.text)
            checked += 1
    assert checked >= len(answers)


def _tool(name: str, **props: str) -> dict:
    return {"type": "function", "function": {"name": name, "description": "", "parameters": {
        "type": "object", "properties": {p: {"type": t} for p, t in props.items()}, "required": list(props)}}}


async def test_same_named_tools_are_listed_and_either_schema_accepts():
    spec = {"kind": "schema", "tools": [_tool("drivers", season="string"), _tool("drivers", driver_id="string")]}
    with pytest.raises(ValueError, match="defined twice"):
        make_env(spec)
    env = make_env({**spec, "same_name_tools": True})
    assert env.tool_names() == ["drivers", "drivers"]
    assert (await env.call("drivers", {"season": "2021"})).ok and (await env.call("drivers", {"driver_id": "d7"})).ok
    bad = await env.call("drivers", {"driverid": "d7"})
    assert not bad.ok and bad.error_kind == "schema"
    assert (await env.fork().call("drivers", {"driver_id": "d7"})).ok


async def test_unlisted_tools_are_callable_but_not_shown():
    env = make_env({"kind": "schema", "tools": [_tool("ToolSearcher", keywords="string")], "unlisted_tools": [_tool("AddAlarm", time="string")]})
    assert env.tool_names() == ["ToolSearcher"] and env.callable_names() == ["ToolSearcher", "AddAlarm"]
    assert (await env.call("AddAlarm", {"time": "07:00"})).ok
    assert not (await env.call("AddAlarm", {"time": 7})).ok  # validated like a listed tool
    unknown = await env.call("DeleteAlarm", {})
    assert unknown.error_kind == "unknown_tool" and "AddAlarm" not in unknown.text  # the error lists what is shown
    assert (await env.fork().call("AddAlarm", {"time": "07:00"})).ok
    with pytest.raises(ValueError, match="also listed"):
        make_env({"kind": "schema", "tools": [_tool("A")], "unlisted_tools": [_tool("A")]})
