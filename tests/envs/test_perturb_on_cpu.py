"""Perturbations: deterministic per seed, calls map back to the real tools, errors use the names shown."""

from __future__ import annotations

import json

import pytest
from env_helpers import bfcl_entries, bfcl_spec, toolhop_spec

from verl_toolmaster.envs import make_env
from verl_toolmaster.envs.calls import bind_arguments, parse_call_string
from verl_toolmaster.envs.perturb import PerturbedEnv

WEATHER = {
    "name": "get_weather",
    "description": "Retrieve the current weather for a specified city. Returns the temperature in the requested unit.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string", "description": "Name of the city."}, "unit": {"type": "string", "enum": ["c", "f"]}},
        "required": ["city"],
    },
}
TIME = {"name": "get_time", "description": "Get the local time of a city.", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def schema_env(**perturb):
    return make_env({"kind": "schema", "tools": [WEATHER, TIME], "perturb": {"seed": 3, **perturb}})


def test_deterministic_per_seed():
    a, b = schema_env(distractors=3).tools(), schema_env(distractors=3).tools()
    assert json.dumps(a) == json.dumps(b)
    c = make_env({"kind": "schema", "tools": [WEATHER, TIME], "perturb": {"seed": 4, "distractors": 3}}).tools()
    assert {t["function"]["name"] for t in a}.isdisjoint({t["function"]["name"] for t in c})
    names = {t["function"]["name"] for t in a}
    assert len(a) == 5 and not names & {"get_weather", "get_time"}


async def test_round_trip_through_canonical_and_call():
    env = schema_env()
    m = env.mapping()
    surface = next(s for s, v in m.items() if v["tool"] == "get_weather")
    back = {v: k for k, v in m[surface]["params"].items()}  # real -> surface
    args = {back["city"]: "Oslo", back["unit"]: "c"}
    assert env.canonical(surface, args) == ("get_weather", {"city": "Oslo", "unit": "c"})
    assert env.canonical(surface, json.dumps(args)) == ("get_weather", {"city": "Oslo", "unit": "c"})
    obs = await env.call(surface, args)
    assert obs.ok and 'get_weather({"city": "Oslo", "unit": "c"})' in obs.text  # the backend saw the real call
    assert env.canonical("not_a_tool", {"a": 1}) == ("not_a_tool", {"a": 1})


async def test_errors_speak_in_the_names_the_model_saw():
    env = schema_env()
    m = env.mapping()
    surface = next(s for s, v in m.items() if v["tool"] == "get_weather")
    city = next(s for s, r in m[surface]["params"].items() if r == "city")
    obs = await env.call(surface, {"town": "Oslo"})
    assert obs.error_kind == "schema"
    assert f"missing required parameter '{city}'" in obs.text and "'town'" in obs.text
    assert "get_weather" not in obs.text and "'city'" not in obs.text
    obs = await env.call("get_weather", {"city": "Oslo"})
    assert obs.error_kind == "unknown_tool" and surface in obs.text and "get_time" not in obs.text  # lists disguised names only


async def test_distractors_validate_but_return_nothing():
    env = schema_env(distractors=2)
    distractors = [s for s, v in env.mapping().items() if v["tool"] is None]
    assert len(distractors) == 2
    schema = next(t for t in env.tools() if t["function"]["name"] == distractors[0])["function"]["parameters"]
    good = {p: ("x" if spec["type"] == "string" else 1) for p, spec in schema["properties"].items()}
    obs = await env.call(distractors[0], good)
    assert obs.ok and json.loads(obs.text) == {"results": []}
    assert (await env.call(distractors[0], {})).error_kind == "schema"
    assert env.canonical(distractors[0], good) == (distractors[0], good)


def test_typo_names_stay_recognisable():
    env = schema_env(name_style="typo", rename_params=False)
    for surface, v in env.mapping().items():
        assert surface != v["tool"] and _edit_distance(surface, v["tool"]) <= 4  # at most two edits (a swap is two)


def _edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def test_description_modes():
    def desc(mode):
        env = make_env({"kind": "schema", "tools": [WEATHER], "perturb": {"seed": 1, "descriptions": mode, "rename_tools": False}})
        return env.tools()[0]["function"]["description"]

    assert desc("keep") == WEATHER["description"]
    assert desc("drop") == ""
    sentences = lambda text: sorted(x.strip().rstrip(".") for x in text.split(". "))  # noqa: E731
    assert sentences(desc("shuffle")) == sentences(WEATHER["description"])
    para = desc("paraphrase")
    assert para != WEATHER["description"] and not para.startswith("Retrieve ") and "weather" in para


def test_unknown_options_are_rejected():
    with pytest.raises(ValueError, match=r"perturb options \['colour'\] are unknown"):
        make_env({"kind": "schema", "tools": [WEATHER], "perturb": {"seed": 1, "colour": "red"}})
    with pytest.raises(ValueError, match="integer 'seed'"):
        make_env({"kind": "schema", "tools": [WEATHER], "perturb": {"distractors": 1}})


async def test_toolhop_gold_trace_through_disguised_tools(toolhop_rows):
    row = next(r for r in toolhop_rows if r["id"] == "toolhop-021")
    plain = make_env(toolhop_spec(row))
    env = make_env({**toolhop_spec(row), "perturb": {"seed": 11, "distractors": 2}})
    assert isinstance(env, PerturbedEnv)
    to_surface = {v["tool"]: (s, {r: sp for sp, r in v["params"].items()}) for s, v in env.mapping().items() if v["tool"]}
    for call in row["gold_calls"]:
        name, args, kwargs = parse_call_string(call)
        real_args = bind_arguments(name, plain.positional_params(name), args, kwargs)
        surface, pmap = to_surface[name]
        obs = await env.call(surface, {pmap[k]: v for k, v in real_args.items()})
        assert obs.text == (await plain.call(name, real_args)).text
    assert obs.text == "97"


async def test_tools_revealed_later_keep_their_disguise(shared_data):
    pytest.importorskip("bfcl_eval")
    entry = next(e for e in bfcl_entries(shared_data, "multi_turn_miss_func") if e["missed_function"] == {"3": ["sort"]})
    env = make_env({**bfcl_spec(shared_data, entry), "perturb": {"seed": 5}})
    before = env.mapping()
    env.set_turn(3)
    after = env.mapping()
    assert {k: v for k, v in after.items() if v["tool"] != "sort"} == before
    sort_surface = next(s for s, v in after.items() if v["tool"] == "sort")
    fork = env.fork()
    assert fork.mapping() == after and sort_surface in fork.tool_names()
    assert env.canonical(sort_surface, {next(iter(after[sort_surface]["params"])): "a.txt"}) == ("sort", {"file_name": "a.txt"})
    assert env.instances is env.unwrap().instances  # wrapper delegates backend attributes


async def test_cache_under_a_perturbation_keys_on_real_names(tmp_path):
    path = str(tmp_path / "c.jsonl")
    rec = make_env({"kind": "schema", "tools": [WEATHER], "cache": {"mode": "record", "path": path}, "perturb": {"seed": 1}})
    s1, v1 = next(iter(rec.mapping().items()))
    obs1 = await rec.call(s1, {next(iter(v1["params"])): "Oslo"})
    rep = make_env({"kind": "schema", "tools": [WEATHER], "cache": {"mode": "replay", "path": path}, "perturb": {"seed": 2}})
    s2, v2 = next(iter(rep.mapping().items()))
    assert s2 != s1
    obs2 = await rep.call(s2, {next(iter(v2["params"])): "Oslo"})
    assert obs2.ok and obs2.text == obs1.text
