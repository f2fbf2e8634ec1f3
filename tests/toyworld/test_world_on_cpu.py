"""World generation: deterministic, train/test tools disjoint, levels as documented, names one token each."""

from __future__ import annotations

import asyncio
import json

import pytest

from verl_toolmaster.toyworld import world as tw
from verl_toolmaster.data.task import rl_row
from verl_toolmaster.envs import make_env


def test_same_seed_same_world_other_seed_other_world(world, tasks):
    again = tw.build_world(seed=7, tools_per_split=12)
    assert again.to_dict() == world.to_dict()
    assert [t.to_dict() for t in tw.make_tasks(again, "test", 40, tw.LEVELS)] == [t.to_dict() for t in tasks["test"]]
    other = tw.build_world(seed=8, tools_per_split=12)
    assert [t.name for t in other.catalogues["train"]] != [t.name for t in world.catalogues["train"]]


def test_train_and_test_tools_share_no_name(world, tasks):
    train_tools = {t.name for t in world.catalogues["train"]}
    test_tools = {t.name for t in world.catalogues["test"]}
    assert train_tools and test_tools and not train_tools & test_tools
    # the default (shared) vocabulary: held-out names are new word pairs of words training also writes
    assert world.vocabulary == "shared"
    assert tw.tool_vocabulary(tasks["train"]) & tw.tool_vocabulary(tasks["test"])
    assert all(tw.name_split(7, name) == "test" for name in test_tools)
    # and every task only uses its own split's tools
    for split, part in tasks.items():
        own = {t.name for t in world.catalogues[split]}
        assert all(set(t.env["impl"]) <= own and t.split == split for t in part)


def test_every_operation_is_in_both_catalogues(world):
    for split in tw.SPLITS:
        assert {t.op for t in world.catalogues[split]} == set(tw.OPS)


def test_test_tools_behave_differently(world):
    """Held-out lookup tools carry their own tables and attributes (behaviours no training task shows)."""
    train = {(t.label, json.dumps(t.table, sort_keys=True)) for t in world.catalogues["train"] if t.op == "lookup"}
    test = {(t.label, json.dumps(t.table, sort_keys=True)) for t in world.catalogues["test"] if t.op == "lookup"}
    assert test and not train & test


def _documented_call(task):
    gold = task.gold[0][0][0]
    schema = next(s for s in task.env["tools"] if s["function"]["name"] == gold["name"])
    return gold["name"], dict(zip(schema["function"]["parameters"]["required"], gold["arguments"].values()))


def _tool(task, name):
    return next(s for s in task.env["tools"] if s["function"]["name"] == name)["function"]


def _call(task, name, args):
    return asyncio.run(make_env(task.env).call(name, args))


def test_levels(tasks):
    seen = set()
    for t in tasks["train"] + tasks["test"]:
        level = t.tags["level"]
        seen.add(level)
        name, documented = _documented_call(t)
        true_args = t.gold[0][0][0]["arguments"]
        obs = _call(t, name, documented)
        if level == 1:
            assert len(t.env["tools"]) == 1 and documented == true_args and obs.ok
        elif level == 4:
            # the amount is documented under a stale name: the deposit succeeds, applies the default, says so
            stale = [d for d, r in zip(documented, true_args) if d != r]
            assert stale == [list(documented)[1]] and obs.ok, t.id
            body = json.loads(obs.text)
            assert body["ignored"] == stale and body["applied"] == {**true_args, list(true_args)[1]: tw.DEPOSIT_DEFAULT}
        elif level == 5:
            # the real names, the two accounts' roles swapped: the transfer succeeds the wrong way round
            assert set(documented) == set(true_args) and list(documented.values()) == list(true_args.values()) and obs.ok
            src, dst = list(true_args.values())[:2]
            body = json.loads(obs.text)
            assert (body["debited"], body["credited"]) == (dst, src)
            props = _tool(t, name)["parameters"]["properties"]
            assert props[list(documented)[0]]["description"] == tw.ROLE_TEXT[0] != props[list(true_args)[0]]["description"]
        else:
            # exactly one documented name is stale: the call a schema reader writes fails, and the error's usage
            # line holds the real names in order
            stale = [d for d, r in zip(documented, true_args) if d != r]
            assert len(stale) == 1, t.id
            assert not obs.ok and obs.error_kind == "schema" and f'unknown argument "{stale[0]}"' in obs.text
            usage = obs.text.split("Usage: ", 1)[1]
            assert json.dumps({k: "integer" if isinstance(v, int) else "string" for k, v in true_args.items()}) in usage
        if level == 3:
            tools = t.env["tools"]
            assert 2 <= len(tools) <= 3
            signatures = {tuple(p["type"] for p in s["function"]["parameters"]["properties"].values()) for s in tools}
            descriptions = {s["function"]["description"] for s in tools}
            labels = {impl["label"] for impl in t.env["impl"].values()}
            assert len(signatures) == 1 and len(descriptions) == 1 and len(labels) == len(tools)  # only a call tells them apart
    assert seen == set(tw.LEVELS)


def test_questions_name_the_label_and_list_values_in_parameter_order(tasks):
    for t in tasks["train"]:
        gold = t.gold[0][0][0]
        impl = t.env["impl"][gold["name"]]
        assert impl["label"].rstrip("ed") in t.query or impl["label"] in t.query
        shown = [json.dumps(v) if isinstance(v, str) else str(v) for v in gold["arguments"].values()]
        positions = [t.query.index(s) for s in shown]
        assert positions == sorted(positions), t.query


def test_schema_order_survives_rl_row_key_sorting(tasks):
    """rl_row stores the env with sorted keys; the properties the model sees keep the parameter order."""
    for t in tasks["test"]:
        stored = json.loads(rl_row(t, 0, tw.system_text("on"))["extra_info"]["env"])
        assert stored == t.env  # tasks are generated in the stored key order already
        for s in stored["tools"]:
            params = s["function"]["parameters"]
            assert list(params["properties"]) == params["required"]


def test_names_are_single_tokens_of_the_tiny_tokenizer(tiny_tokenizer):
    words = [*tw.NAME_WORDS, *tw.VALUE_WORDS, *tw.ATTRIBUTES]
    multi = [w for w in words if len(tiny_tokenizer.encode(f'"{w}"', add_special_tokens=False)) != 3]
    assert not multi, f"words that are not one token between quotes: {multi}"


@pytest.mark.parametrize("kwargs, fragment", [
    ({"levels": (6,)}, "levels must be a non-empty subset"),
    ({"levels": ()}, "levels must be a non-empty subset"),
    ({"tools_per_split": 3}, "tools_per_split must be at least"),
    ({"tools_per_split": 5000, "vocabulary": "disjoint"}, "tools_per_split must be at most"),
    ({"tools_per_split": 8000}, "tools_per_split must be at most"),
    ({"max_int": 1}, "max_int must be in"),
])
def test_bad_world_config(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        tw.WorldConfig(**kwargs)


def test_generation_does_not_depend_on_the_process(tasks):
    """Same tasks in a fresh interpreter with another hash seed (no set/dict-order or id() leaks)."""
    import hashlib
    import os
    import subprocess
    import sys

    code = (
        "import hashlib, json; from verl_toolmaster.toyworld import world as tw; "
        "w = tw.build_world(seed=7, tools_per_split=12); "
        "print(hashlib.sha256(json.dumps([t.to_dict() for t in tw.make_tasks(w, 'test', 40, tw.LEVELS)], sort_keys=True).encode()).hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, "PYTHONHASHSEED": "12345"}, timeout=120)
    assert out.returncode == 0, out.stderr
    here = hashlib.sha256(json.dumps([t.to_dict() for t in tasks["test"]], sort_keys=True).encode()).hexdigest()
    assert out.stdout.strip() == here


def test_disjoint_vocabulary_keeps_every_word_on_one_side():
    world = tw.build_world(seed=7, tools_per_split=12, vocabulary="disjoint")
    tasks = {s: tw.make_tasks(world, s, 30, (1, 2, 3)) for s in tw.SPLITS}
    assert not tw.tool_vocabulary(tasks["train"]) & tw.tool_vocabulary(tasks["test"])
    assert world.to_dict()["vocabulary"] == "disjoint"
    with pytest.raises(ValueError, match="vocabulary must be one of"):
        tw.WorldConfig(vocabulary="mixed")
    with pytest.raises(ValueError, match="at most"):
        tw.WorldConfig(tools_per_split=tw.max_tools("disjoint") + 1, vocabulary="disjoint")
