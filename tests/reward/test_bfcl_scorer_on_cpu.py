"""BFCL scorer vs bfcl-eval's own checker on the shared samples: same verdict on every ground truth (all
correct) and on perturbed calls; fresh backend instances per trajectory; no model-chosen name reaches eval."""

from __future__ import annotations

import copy
import sys
import uuid

import pytest
from reward_helpers import call, episode

from verl_toolmaster.reward.scorers.bfcl import BFCLMultiScorer, BFCLSingleScorer, ast_checker_module, call_string

pytestmark = pytest.mark.bfcl

SINGLE = BFCLSingleScorer()
MULTI = BFCLMultiScorer()


def _language(category):
    """The language bfcl-eval's evaluator passes for a category (written out here, not taken from the scorer)."""
    from bfcl_eval.constants.enums import Language

    return Language.JAVASCRIPT if "javascript" in category else Language.JAVA if "java" in category else Language.PYTHON


def reference_single(gt, decoded):
    """bfcl-eval's verdict for a decoded model output ``[{name: args}]`` (its runner's logic per category)."""
    from bfcl_eval.utils import is_empty_output

    if "irrelevance" in gt["category"]:
        return is_empty_output(decoded)
    result = ast_checker_module().ast_checker(gt["functions"], decoded, gt["possible_answer"], _language(gt["category"]), gt["category"], "toolmaster")
    return bool(result["valid"])


def ours_single(gt, calls):
    return SINGLE.score(gt, episode(["done"], [call(c["name"], c["arguments"]) for c in calls])).answer == 1.0


def _pick(options, required=False):
    """One acceptable value: omitted (None) when "" (= may be left out) is acceptable and the parameter is not
    required, else the first non-empty option; nested dicts of options are resolved the same way."""
    if "" in options and not required:
        return None
    value = next(o for o in options if o != "")
    if isinstance(value, dict):
        return {k: v for k, v in ((k, _pick(o)) for k, o in value.items()) if v is not None}
    if isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
        return [{k: v for k, v in ((k, _pick(o)) for k, o in x.items()) if v is not None} for x in value]
    return value


def _gold_single(task):
    """The ground-truth output ``[{name, arguments}]`` read off BFCL's possible answers."""
    gold = []
    docs = {f["name"]: f for f in task.ground_truth["functions"]}
    for answer in task.ground_truth["possible_answer"]:
        ((name, params),) = answer.items()
        required = set(docs[name]["parameters"].get("required", []))
        args = {k: v for k, v in ((k, _pick(o, k in required)) for k, o in params.items()) if v is not None}
        gold.append({"name": name, "arguments": args})
    return gold


def _wrong(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1000
    if isinstance(value, float):
        return value * 3.7 + 1.0
    if isinstance(value, str):
        return value + "_x"
    if isinstance(value, list):
        return value + value[:1] if value else ["x"]
    if isinstance(value, dict):
        return {**value, "zz_extra": 1}
    return "x"


def _perturbations(task, gold):
    out = []
    if not gold:
        doc = task.ground_truth["functions"][0]
        return [("call_when_none_expected", [{"name": doc["name"], "arguments": {}}])]
    first = gold[0]
    if first["arguments"]:
        key = next(iter(first["arguments"]))
        p = copy.deepcopy(gold)
        p[0]["arguments"][key] = _wrong(p[0]["arguments"][key])
        out.append(("wrong_value", p))
    doc_of_first = next(f for f in task.ground_truth["functions"] if f["name"] == first["name"])
    req = [r for r in doc_of_first["parameters"].get("required", []) if r in first["arguments"]]
    if req:
        p = copy.deepcopy(gold)
        del p[0]["arguments"][req[0]]
        out.append(("missing_required", p))
    p = copy.deepcopy(gold)
    p[0]["name"] = first["name"] + "_renamed"
    out.append(("wrong_name", p))
    out.append(("duplicate_call", copy.deepcopy(gold) + copy.deepcopy(gold[:1])))
    out.append(("no_call", []))
    return out


def test_single_turn_agrees_with_bfcl_eval_on_every_ground_truth_and_perturbation(tasks):
    single = [t for t in tasks("bfcl") if t.source == "bfcl_single"]
    assert len(single) == 160
    agree = total = wrong_detected = perturbed = 0
    for t in single:
        gold = _gold_single(t)
        decoded = [{c["name"]: c["arguments"]} for c in gold]
        ref, ours = reference_single(t.ground_truth, decoded), ours_single(t.ground_truth, gold)
        assert ref and ours, f"{t.id}: ground truth must pass (bfcl-eval {ref}, ours {ours})"
        for kind, calls in _perturbations(t, gold):
            decoded = [{c["name"]: c["arguments"]} for c in calls]
            ref, ours = reference_single(t.ground_truth, decoded), ours_single(t.ground_truth, calls)
            total += 1
            agree += ref == ours
            perturbed += 1
            wrong_detected += not ours
            assert ref == ours, f"{t.id} {kind}: bfcl-eval says {ref}, ours {ours}"
    assert agree == total and total > 500
    assert wrong_detected / perturbed > 0.95, "perturbations must mostly break the call"


def test_single_turn_maps_underscored_names_back_to_dotted_docs(tasks):
    t = next(t for t in tasks("bfcl") if t.source == "bfcl_single" and "." in t.ground_truth["functions"][0]["name"] and t.gold)
    gold = _gold_single(t)
    underscored = [{"name": c["name"].replace(".", "_"), "arguments": c["arguments"]} for c in gold]
    assert ours_single(t.ground_truth, underscored)


@pytest.fixture(scope="module")
def java_js_tasks():
    """simple_java / simple_javascript tasks of the installed bfcl-eval package (the shared sample has none)."""
    from verl_toolmaster.data import get_adapter
    from verl_toolmaster.data.base import SkipRecord
    from verl_toolmaster.data.bfcl import package_data_dir

    adapter = get_adapter("bfcl")(categories=["simple_java", "simple_javascript"])
    out = []
    for record in adapter.records(package_data_dir()):
        try:
            out.append(adapter.convert(record))
        except SkipRecord:  # counted and checked in tests/data/test_bfcl_gold_on_cpu.py
            continue
    return out


def test_java_and_javascript_are_checked_with_their_declared_types(java_js_tasks):
    """The model writes Java/JavaScript values as source strings; bfcl-eval converts them with the declared types
    of the docs as shipped. Our verdict equals bfcl-eval's on every gold (correct) and on a wrong value of each."""
    assert len(java_js_tasks) == 147
    wrong_detected = 0
    for t in java_js_tasks:
        gold = [c for step in t.gold[0] for c in step]
        assert all(isinstance(v, str) for c in gold for v in c["arguments"].values()), t.id
        decoded = [{c["name"]: c["arguments"]} for c in gold]
        assert reference_single(t.ground_truth, decoded) and ours_single(t.ground_truth, gold), t.id
        key = next(iter(gold[0]["arguments"]))
        bad = copy.deepcopy(gold)
        # (not _wrong(): bfcl-eval's converters read "new int[]{1}_x" as [1], they search rather than match)
        bad[0]["arguments"][key] = "someOtherValue"
        ref, ours = reference_single(t.ground_truth, [{c["name"]: c["arguments"]} for c in bad]), ours_single(t.ground_truth, bad)
        assert ref == ours, f"{t.id}: bfcl-eval {ref}, ours {ours}"
        wrong_detected += not ours
    assert wrong_detected == len(java_js_tasks)


def test_java_ground_truth_with_hinted_docs_is_a_data_error(java_js_tasks):
    """Docs whose Java types were replaced by "string" (as shown to the model) make bfcl-eval's checker raise
    KeyError: the scorer names the problem instead of scoring every answer 0."""
    t = next(t for t in java_js_tasks if t.tags["category"] == "simple_java")
    gt = copy.deepcopy(t.ground_truth)
    for f in gt["functions"]:
        for prop in f["parameters"]["properties"].values():
            prop["type"] = "string"
    with pytest.raises(ValueError, match="without language hints"):
        SINGLE.score(gt, episode(["done"], [call(c["name"], c["arguments"]) for step in t.gold[0] for c in step]))


def test_ast_checker_loads_without_model_handler_deps():
    module = ast_checker_module()
    assert callable(module.ast_checker)
    stub = sys.modules.get("bfcl_eval.constants.model_config")
    assert stub is None or hasattr(stub, "ModelConfig"), "the stand-in must not stay in sys.modules"


# ---------------------------------------------------------------- multi turn


def render(c):
    """Independent rendering of a call as the Python string bfcl-eval executes."""
    return f"{c['name']}(" + ", ".join(f"{k}={v!r}" for k, v in c["arguments"].items()) + ")"


def reference_multi(task, turns):
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    gt = task.ground_truth
    entry = {"id": gt["id"], "initial_config": gt["initial_config"], "involved_classes": gt["involved_classes"]}
    decoded = [[[render(c) for c in calls]] if calls else [] for calls in turns]
    return bool(multi_turn_checker(decoded, gt["ground_truth"], entry, gt["category"], f"ref_{uuid.uuid4().hex}")["valid"])


def ours_multi(task, turns):
    calls = [call(c["name"], c["arguments"], turn=u) for u, cs in enumerate(turns) for c in cs]
    return MULTI.score(task.ground_truth, episode(["done"] * len(turns), calls))


def _gold_turns(task):
    return [[c for step in steps for c in step] for steps in task.gold]


def _multi_perturbations(turns):
    out = []
    u = next(i for i, t in enumerate(turns) if t)
    p = copy.deepcopy(turns)
    p[u] = p[u][:-1]
    out.append(("drop_last_call", p))
    if turns[u][0]["arguments"]:
        p = copy.deepcopy(turns)
        k = next(iter(p[u][0]["arguments"]))
        p[u][0]["arguments"][k] = _wrong(p[u][0]["arguments"][k])
        out.append(("wrong_value", p))
    if len(turns) > 1:
        p = copy.deepcopy(turns)
        p[u + 1 if u + 1 < len(p) else u - 1] += p[u]
        p[u] = []
        out.append(("wrong_turn", p))
    return out


def test_multi_turn_agrees_with_bfcl_eval(tasks):
    multi = [t for t in tasks("bfcl") if t.source == "bfcl_multi"]
    assert len(multi) == 20
    checked = 0
    for t in multi:
        gold = _gold_turns(t)
        r = ours_multi(t, gold)
        assert reference_multi(t, gold) and (r.answer, r.reason) == (1.0, "correct"), t.id
        for kind, turns in _multi_perturbations(gold):
            ours = ours_multi(t, turns)
            ref = reference_multi(t, turns)
            assert ref == (ours.answer == 1.0), f"{t.id} {kind}: bfcl-eval {ref}, ours {ours}"
            checked += 1
        # the same gold again after the perturbed runs: nothing carried over
        assert ours_multi(t, gold).answer == 1.0, t.id
    assert checked >= 50


def test_multi_turn_leaves_no_instances_behind(tasks):
    from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils

    t = next(t for t in tasks("bfcl") if t.source == "bfcl_multi")
    before = set(vars(multi_turn_utils))
    for _ in range(3):
        assert ours_multi(t, _gold_turns(t)).answer == 1.0
    assert set(vars(multi_turn_utils)) == before


def test_multi_turn_unfinished_episode_fails(tasks):
    t = next(t for t in tasks("bfcl") if t.source == "bfcl_multi")
    gold = _gold_turns(t)
    calls = [call(c["name"], c["arguments"], turn=0) for c in gold[0]]
    r = MULTI.score(t.ground_truth, episode(["done"], calls))
    assert (r.answer, r.reason) == (0.0, "bfcl:multi_turn:force_terminated")


def test_multi_turn_rejected_calls_did_not_happen(tasks):
    t = next(t for t in tasks("bfcl") if t.source == "bfcl_multi" and len(t.gold[0]) > 0)
    gold = _gold_turns(t)
    calls = [call(c["name"], c["arguments"], turn=u) for u, cs in enumerate(gold) for c in cs]
    extra = call("mkdir", {"dir_name": "should_not_exist"}, turn=0, ok=False, error_kind="unknown_tool")
    r = MULTI.score(t.ground_truth, episode(["done"] * len(gold), [extra] + calls))
    assert r.answer == 1.0


def test_model_chosen_names_never_reach_python_builtins(tasks, tmp_path):
    target = tmp_path / "pwned.txt"
    allowed = frozenset({"cd", "ls"})
    assert call_string("open", {"file": str(target), "mode": "w"}, allowed) == "_toolmaster_rejected_call()"
    import ast

    tricky = "x'); open('y', 'w'); ('"
    parsed = ast.parse(call_string("cd", {"folder": tricky, "mode": 1}, allowed), mode="eval").body
    assert isinstance(parsed, ast.Call) and parsed.func.id == "cd"
    assert [(k.arg, ast.literal_eval(k.value)) for k in parsed.keywords] == [("folder", tricky), ("mode", 1)]
    assert call_string("cd", {"bad key": 1}, allowed) == "_toolmaster_rejected_call()"
    assert call_string("cd", {"class": 1}, allowed) == "_toolmaster_rejected_call()"
    t = next(t for t in tasks("bfcl") if t.source == "bfcl_multi")
    n = len(t.ground_truth["ground_truth"])
    calls = [call("open", {"file": str(target), "mode": "w"}, turn=u) for u in range(n)]
    calls += [call("__import__", {"name": "os"}, turn=0)]
    r = MULTI.score(t.ground_truth, episode(["done"] * n, calls))
    assert r.answer == 0.0
    assert not target.exists()


def test_malformed_ground_truth_raises(tasks):
    t = next(t for t in tasks("bfcl") if t.source == "bfcl_multi")
    gt = dict(t.ground_truth, involved_classes=["NoSuchAPI"])
    with pytest.raises(ValueError, match="NoSuchAPI"):
        MULTI.score(gt, episode(["x"] * len(gt["ground_truth"]), [call("ls", {}, turn=0)]))
    with pytest.raises(ValueError, match="long_context"):
        MULTI.score(dict(t.ground_truth, long_context=True), episode(["x"]))
