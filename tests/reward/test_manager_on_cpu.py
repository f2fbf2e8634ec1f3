"""ToolMasterRewardManager.run_single: robustness (any response gets a score and a reason), record delivery
paths, scorer failures, configuration errors at start-up, registration."""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys

import pytest
from omegaconf import OmegaConf
from reward_helpers import Step, build_trajectory, make_batch

from verl_toolmaster.reward.config import RewardConfigError
from verl_toolmaster.reward.manager import BASE_KEYS, ToolMasterRewardManager
from verl_toolmaster.reward.scorers.stabletoolbench import JudgeConfigError


def manager_cfg(**kwargs):
    return OmegaConf.create({"reward": {"reward_kwargs": kwargs}})


def run(tokenizer, samples, cfg=None, compute_score=None, patch=None, record_column="tool_extra_fields"):
    async def go():
        manager = ToolMasterRewardManager(cfg or manager_cfg(), tokenizer, compute_score)
        if patch:
            patch(manager)
        batch = make_batch(tokenizer, samples, record_column=record_column)
        return manager, [await manager.run_single(batch[i : i + 1]) for i in range(len(batch))]

    return asyncio.run(go())


@pytest.fixture(scope="module")
def hop(tasks):
    return tasks("toolhop")[0]


def test_any_response_gets_a_score_and_a_reason(tiny_tokenizer, hop):
    gt = hop.ground_truth
    gold = gt["answer"]
    tok = tiny_tokenizer
    thousand = build_trajectory(tok, [Step("execute", "go", [{"name": "f", "arguments": {"i": i}} for i in range(1000)]), Step("answer", gold)])
    samples = [
        {"text": "", "source": "toolhop", "gt": gt, "record": "absent"},  # empty
        {"text": "<execute>go</execute>\n<tool_call>\n{\"name\": \"f\", \"argum", "source": "toolhop", "gt": gt, "record": "absent"},  # truncated
        {"text": "\x00\x01 ��� <answer><answer></trial>" * 50, "source": "toolhop", "gt": gt, "record": "absent"},  # garbage
        {"traj": build_trajectory(tok, [Step("execute", "go", [{"name": "f", "arguments": {}}])]), "source": "toolhop", "gt": gt},  # no answer
        {"traj": thousand, "source": "toolhop", "gt": gt},  # a thousand calls
        {"traj": build_trajectory(tok, [Step("answer", gold)]), "source": "toolhop", "gt": gt},  # fine
    ]
    manager, out = run(tok, samples)
    keys = set(manager.extra_keys)
    assert set(BASE_KEYS) <= keys
    for i, r in enumerate(out):
        info = r["reward_extra_info"]
        assert set(info) == keys, i
        assert isinstance(r["reward_score"], float) and r["reward_score"] == info["score"], i
        assert isinstance(info["reason"], str) and info["reason"], i
        assert all(isinstance(info[k], float) for k in BASE_KEYS if k != "reason"), i
    reasons = [r["reward_extra_info"]["reason"] for r in out]
    assert reasons[:4] == ["no_answer"] * 4
    assert reasons[4:] == ["correct", "correct"]
    assert out[4]["reward_extra_info"]["cost"] == 1.0 and out[4]["reward_score"] < out[5]["reward_score"]
    assert out[5]["reward_score"] == pytest.approx(1.0)


def test_record_delivery_paths_give_the_same_result(tiny_tokenizer, hop):
    traj = build_trajectory(tiny_tokenizer, [Step("trial", "probe", [{"name": "f", "arguments": {}}]), Step("execute", "go", [{"name": "f", "arguments": {}}]), Step("answer", hop.ground_truth["answer"])])
    samples = [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth}]
    _, a = run(tiny_tokenizer, samples, record_column="tool_extra_fields")
    _, b = run(tiny_tokenizer, samples, record_column="toolmaster")
    _, c = run(tiny_tokenizer, [{**samples[0], "record": json.dumps(traj.record)}])  # a JSON string works too
    for out in (a, b, c):  # wall time differs between runs; everything else must not
        assert out[0]["reward_extra_info"].pop("scoring_seconds") >= 0.0
    assert a == b == c
    assert a[0]["reward_extra_info"]["has_record"] == 1.0 and a[0]["reward_score"] == pytest.approx(1.2)


def test_without_record_the_text_is_parsed_with_the_protocol_parser(tiny_tokenizer, hop):
    traj = build_trajectory(tiny_tokenizer, [Step("trial", "probe", [{"name": "f", "arguments": {}}]), Step("execute", "go", [{"name": "f", "arguments": {}}]), Step("answer", hop.ground_truth["answer"])])
    _, out = run(tiny_tokenizer, [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth, "record": "absent"}])
    info = out[0]["reward_extra_info"]
    assert (info["has_record"], info["from_text"], info["answer"], info["format"], info["trial"]) == (0.0, 1.0, 1.0, 1.0, 1.0)
    assert (info["trial_calls"], info["execute_calls"]) == (1.0, 1.0)
    _, off = run(tiny_tokenizer, [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth, "record": "absent"}], cfg=manager_cfg(text_fallback=False))
    assert off[0]["reward_extra_info"]["reason"] == "no_protocol_record" and off[0]["reward_extra_info"]["format"] == 0.0


def test_bad_record_and_span_mismatch_are_reported(tiny_tokenizer, hop, caplog):
    traj = build_trajectory(tiny_tokenizer, [Step("answer", hop.ground_truth["answer"])])
    bad = dict(traj.record, version=7)
    shifted = dict(traj.record, phase_spans=[["answer", 0, 3]])
    with caplog.at_level(logging.ERROR, logger="verl_toolmaster.reward.manager"):
        _, out = run(tiny_tokenizer, [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth, "record": bad}, {"traj": traj, "source": "toolhop", "gt": hop.ground_truth, "record": shifted}])
    assert out[0]["reward_extra_info"]["reason"] == "bad_protocol_record"
    assert out[1]["reward_extra_info"]["spans_mismatch"] == 1.0 and out[1]["reward_extra_info"]["answer"] == 1.0
    assert "version" in caplog.text and "phase_spans" in caplog.text


def test_scorer_exception_is_caught_logged_with_index_and_scored_as_failure(tiny_tokenizer, hop, caplog):
    def boom(manager):
        def explode(*_):
            raise RuntimeError("kaboom")

        manager.scorers["toolhop"].score = explode
        manager.scorers["toolhop"].ascore = lambda *a: asyncio.sleep(0, result=explode())

    traj = build_trajectory(tiny_tokenizer, [Step("answer", hop.ground_truth["answer"])])
    samples = [{"traj": traj, "source": "toolhop", "gt": hop.ground_truth}] * 2 + [{"traj": traj, "source": "toolhop", "gt": {"nope": 1}}]
    with caplog.at_level(logging.ERROR, logger="verl_toolmaster.reward.manager"):
        _, out = run(tiny_tokenizer, samples, patch=boom)
    for r in out:
        info = r["reward_extra_info"]
        assert (info["reason"], info["scorer_error"], info["answer"]) == ("scorer_error", 1.0, 0.0)
        assert r["reward_score"] == pytest.approx(0.0)  # format 1, no cost: w_format*(1-1) = 0
    assert "index=0" in caplog.text and "index=1" in caplog.text and "kaboom" in caplog.text


def test_bad_ground_truth_is_a_scorer_error(tiny_tokenizer, hop, caplog):
    traj = build_trajectory(tiny_tokenizer, [Step("answer", "x")])
    with caplog.at_level(logging.ERROR):
        _, out = run(tiny_tokenizer, [{"traj": traj, "source": "apibank", "gt": {"calls": "not a list"}}])
    assert out[0]["reward_extra_info"]["reason"] == "scorer_error"
    assert "ground_truth.calls" in caplog.text and "index=0" in caplog.text


def test_unknown_sources_go_to_verls_compute_score(tiny_tokenizer):
    from verl.utils.reward_score import default_compute_score

    traj = build_trajectory(tiny_tokenizer, [Step("answer", "#### 72")])
    samples = [
        {"traj": traj, "source": "openai/gsm8k", "gt": "72"},
        {"traj": traj, "source": "no_such_source", "gt": "72"},
    ]
    samples[0]["gt"] = samples[1]["gt"] = "72"
    _, out = run(tiny_tokenizer, samples, compute_score=default_compute_score)
    assert out[0]["reward_extra_info"]["reason"] == "verl_compute_score"
    assert out[1]["reward_extra_info"]["reason"] == "unknown_source" and out[1]["reward_extra_info"]["answer"] == 0.0


def test_configuration_errors_surface_at_start_up(tiny_tokenizer):
    async def build(**kw):
        return ToolMasterRewardManager(manager_cfg(**kw), tiny_tokenizer, None)

    with pytest.raises(RewardConfigError, match="w_trail"):
        asyncio.run(build(w_trail=0.3))
    with pytest.raises(RewardConfigError, match="w_cost"):
        asyncio.run(build(w_cost=-1))
    with pytest.raises(JudgeConfigError, match="base_url"):
        asyncio.run(build(judge={"mode": "judge"}))
    with pytest.raises(RewardConfigError, match="judge"):
        asyncio.run(build(judge={"url": "http://x"}))
    m = asyncio.run(build(w_trial=0.5, judge={"mode": "auto"}, overlong_buffer_cfg=None))
    assert m.cfg.w_trial == 0.5 and not m.cfg.judge.active


def test_register_with_verl_is_idempotent():
    from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls

    from verl_toolmaster.reward import REWARD_MANAGER_NAME, register_with_verl

    register_with_verl()
    register_with_verl()
    assert get_reward_manager_cls(REWARD_MANAGER_NAME) is ToolMasterRewardManager


HOOK = """
import wrapt
from verl_toolmaster.reward import register_with_verl
wrapt.register_post_import_hook(lambda _: register_with_verl(), "verl.experimental.reward_loop.reward_manager.registry")
"""
CHECK = """
from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
from verl_toolmaster.reward.manager import ToolMasterRewardManager
print(get_reward_manager_cls("toolmaster") is ToolMasterRewardManager)
"""


@pytest.mark.slow  # two fresh `import verl` processes: ~15 s of CPU
def test_light_import_and_registration_from_a_post_import_hook():
    """Importing the reward package pulls in no verl module. With a post-import hook on verl's registry (how the
    plugin registers), registration completes whichever module is imported first, including .manager itself,
    whose import of verl's reward_manager package fires the hook before the class exists."""
    import os

    scripts = {
        "light": "import sys, verl_toolmaster.reward\nprint(sorted(m for m in sys.modules if m == 'verl' or m.startswith('verl.')))",
        "manager_first": HOOK + "import verl_toolmaster.reward.manager\n" + CHECK,
        "verl_first": HOOK + "import verl.experimental.reward_loop\n" + CHECK,
    }
    env = {**os.environ, "VERL_USE_EXTERNAL_PLUGINS": "none"}  # only the hook installed here
    procs = {k: subprocess.Popen([sys.executable, "-c", v], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for k, v in scripts.items()}
    out = {}
    for k, p in procs.items():
        stdout, stderr = p.communicate(timeout=180)
        assert p.returncode == 0, f"{k}: {stderr[-3000:]}"
        out[k] = stdout.strip().splitlines()[-1]
    assert out == {"light": "[]", "manager_first": "True", "verl_first": "True"}
