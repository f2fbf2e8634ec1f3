"""The bfcl environment: ground-truth replays match bfcl-eval's own executor, call for call and state for state."""

from __future__ import annotations

import json
import uuid

import pytest

pytest.importorskip("bfcl_eval", reason="bfcl-eval not installed (pip install --no-deps bfcl-eval==2026.3.23 mpmath==1.3.0)")

from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import state_checker  # noqa: E402
from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_utils import execute_multi_turn_func_call  # noqa: E402
from env_helpers import bfcl_entries, bfcl_spec  # noqa: E402

from verl_toolmaster.envs import make_env  # noqa: E402
from verl_toolmaster.envs.calls import bind_arguments, parse_call_string  # noqa: E402

pytestmark = pytest.mark.bfcl
CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param")


@pytest.mark.parametrize("category", CATEGORIES)
async def test_ground_truth_replays_like_bfcl_eval(shared_data, category):
    entries = bfcl_entries(shared_data, category)
    assert len(entries) >= 5
    model = f"toolmaster_test_{uuid.uuid4().hex}"  # bfcl-eval keeps instances in module globals by this name
    for entry in entries:
        env = make_env(json.dumps(bfcl_spec(shared_data, entry)))
        for turn, calls in enumerate(entry["gt"]):
            env.set_turn(turn)
            ours = []
            for call in calls:
                name, args, kwargs = parse_call_string(call)
                obs = await env.call(name, bind_arguments(name, env.positional_params(name), args, kwargs))
                assert obs.ok and not obs.text.startswith("Error during execution"), (entry["id"], turn, call, obs)
                ours.append(obs.text)
            theirs, their_instances = execute_multi_turn_func_call(
                calls, entry["initial_config"], entry["involved_classes"], model, entry["id"], long_context=False
            )
            assert ours == theirs, (entry["id"], turn)
            assert state_checker(env.instances, their_instances)["valid"], (entry["id"], turn)
        assert env.metrics.calls == sum(map(len, entry["gt"])) and not env.metrics.errors


async def test_missed_functions_appear_at_their_turn(shared_data):
    entry = next(e for e in bfcl_entries(shared_data, "multi_turn_miss_func") if e["missed_function"] == {"3": ["sort"]})
    env = make_env(bfcl_spec(shared_data, entry))
    assert "sort" not in env.tool_names() and "ls" in env.tool_names()
    env.set_turn(2)
    obs = await env.call("sort", {"file_name": "final_report.pdf"})
    assert obs.error_kind == "unknown_tool" and "'sort'" in obs.text
    env.set_turn(3)
    assert "sort" in env.tool_names()
    obs = await env.call("sort", {"file_name": "nope.pdf"})
    assert obs.ok  # the API answers (with its own error dict): the function is now callable


async def test_fork_is_an_independent_deep_copy(shared_data):
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    env = make_env(bfcl_spec(shared_data, entry))
    await env.call("cd", {"folder": "document"})
    trial = env.fork()
    assert (await trial.call("mkdir", {"dir_name": "scratch"})).ok
    assert "scratch" in (await trial.call("ls", {})).text
    assert "scratch" not in (await env.call("ls", {})).text
    assert trial.instances["GorillaFileSystem"] is not env.instances["GorillaFileSystem"]


async def test_bad_calls_are_observations(shared_data):
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    env = make_env(bfcl_spec(shared_data, entry))
    obs = await env.call("cd", {"directory": "document"})
    assert obs.error_kind == "schema"
    assert obs.text == "Error during execution: cd() got unexpected keyword argument 'directory' and missing required argument 'folder'; parameters: folder"
    obs = await env.call("cd", "not json")
    assert obs.error_kind == "bad_arguments"
    obs = await env.call("rm_rf", {})
    assert obs.error_kind == "unknown_tool"
    assert env.positional_params("sort") == ["file_name"]


def test_spec_errors_name_the_problem(shared_data):
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    spec = bfcl_spec(shared_data, entry)
    with pytest.raises(ValueError, match=r"unknown involved_classes \['NoSuchAPI'\]"):
        make_env({**spec, "involved_classes": ["NoSuchAPI"]})
    with pytest.raises(ValueError, match=r"tools \['made_up'\] have no method"):
        make_env({**spec, "tools": spec["tools"] + [{"name": "made_up", "parameters": {}}]})


async def test_long_context_flag_reaches_the_scenario(shared_data):
    entry = bfcl_entries(shared_data, "multi_turn_base")[0]
    short = make_env(bfcl_spec(shared_data, entry))
    long = make_env({**bfcl_spec(shared_data, entry), "long_context": True})
    for env in (short, long):
        await env.call("cd", {"folder": "document"})
    assert len((await long.call("ls", {})).text) > len((await short.call("ls", {})).text)
