"""Gold traces solve every task through the env; direct SFT rows, RL rows, the generator CLI and the adapter."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from omegaconf import OmegaConf

from verl_toolmaster.reward.scorers.toyworld import _result_value
from verl_toolmaster import compat
from verl_toolmaster.data import get_adapter
from verl_toolmaster.toyworld import generate as gen
from verl_toolmaster.toyworld import world as tw
from verl_toolmaster.protocol.messages import decode_messages
from verl_toolmaster.data import prepare
from verl_toolmaster.data.sft import read_sft_rows
from verl_toolmaster.data.sft_dataset import ToolSFTDataset
from verl_toolmaster.data.task import rl_row
from verl_toolmaster.envs import make_env
from verl_toolmaster.reward.scorers import Episode, load_builtin_scorers


async def _gold_calls(task, repeat=1):
    env = make_env(task.env)
    log = []
    for step in task.gold[0] * repeat:
        for c in step:
            obs = await env.call(c["name"], c["arguments"])
            log.append({"phase": "execute", "turn": 0, "name": c["name"], "arguments": c["arguments"], "ok": obs.ok, "error_kind": obs.error_kind, "text": obs.text})
    return log


def test_gold_trace_solves_every_task_through_the_env(tasks):
    scorer = load_builtin_scorers()["toyworld"]()
    for t in tasks["train"] + tasks["test"]:
        log = asyncio.run(_gold_calls(t))
        assert all(c["ok"] for c in log), (t.id, log)
        assert _result_value(log[-1]["text"]) == t.gold_answers[0]
        res = scorer.score(t.ground_truth, Episode(answers=t.gold_answers, calls=log, env_spec=t.env))
        assert res.answer == 1.0 and res.details["toyworld/answer_seen"] == 1.0, t.id
        assert scorer.score(t.ground_truth, Episode(answers=["wrong"], calls=log, env_spec=t.env)).answer == 0.0
        if "accounts" in t.ground_truth:  # the right answer after the gold call made twice: the real state is wrong
            twice = asyncio.run(_gold_calls(t, repeat=2))
            res = scorer.score(t.ground_truth, Episode(answers=t.gold_answers, calls=twice, env_spec=t.env))
            if twice[-1]["ok"]:  # (a second transfer can fail for want of funds, changing nothing)
                assert (res.answer, res.reason, res.details["toyworld/state_ok"]) == (0.0, "wrong_state", 0.0), t.id
            else:
                assert res.answer == 1.0, t.id


def test_direct_sft_rows_are_the_gold_call_and_its_real_observation(tasks):
    part = tasks["train"][:6]
    rows = gen.direct_sft_rows(part)
    for t, row in zip(part, rows):
        roles = [m["role"] for m in row["messages"]]
        assert roles == ["system", "user", "assistant", "tool", "assistant"]
        assert row["messages"][0]["content"] == tw.system_text("off")
        assert row["messages"][2]["tool_calls"][0]["function"] == {"name": t.gold[0][0][0]["name"], "arguments": t.gold[0][0][0]["arguments"]}
        assert row["messages"][3]["content"] == asyncio.run(_gold_calls(t))[0]["text"]
        assert row["messages"][4]["content"] == f"<answer>{t.gold_answers[0]}</answer>"
        assert "trial" not in json.dumps(row["messages"][2:])


def test_rl_rows_load_with_verl_rlhf_dataset(tasks, tiny_tokenizer, tmp_path):
    from verl_toolmaster.data.sft import write_rl_parquet

    path = tmp_path / "rl.parquet"
    write_rl_parquet([rl_row(t, i, tw.system_text("on")) for i, t in enumerate(tasks["test"])], path)
    cfg = OmegaConf.create({"max_prompt_length": 1024, "filter_overlong_prompts": True, "filter_overlong_prompts_workers": 1})
    ds = compat.RLHFDataset(data_files=[str(path)], tokenizer=tiny_tokenizer, config=cfg)
    assert len(ds) == len(tasks["test"])
    item = ds[3]
    assert item["data_source"] == "toyworld" and item["agent_name"] == "toolmaster_agent"
    messages = decode_messages(list(item["raw_prompt"]))
    assert [m["role"] for m in messages] == ["system", "user"] and messages[1]["content"] == tasks["test"][3].query
    env = make_env(item["extra_info"]["env"])
    ids = tiny_tokenizer.apply_chat_template(messages, tools=env.tools(), add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    assert len(ids) < 400  # short prompts: the tiny model's budget


def test_generator_cli_writes_rl_and_both_sft_flavours(tmp_path, tiny_tokenizer):
    out, err = io.StringIO(), io.StringIO()
    code = gen.main(["--out", str(tmp_path), "--seed", "3", "--tools", "8", "--train-tasks", "8", "--test-tasks", "4", "--levels", "1,2,3", "--no-progress"], out, err)
    assert code == 0, err.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary == {"seed": 3, "tasks": {"train": 8, "test": 4}, "sft_direct": 8, "sft_selfcorrect": 8, "sft_trial": 8, "sft_levels": [1, 2, 3],
                       "rl_levels": [1, 2, 3], "rl_rows": {"train": 8, "test": 4}}
    for name in ("world.json", "tasks_train.jsonl", "tasks_test.jsonl", "train_on.parquet", "train_off.parquet", "test_on.parquet", "test_off.parquet"):
        assert (tmp_path / name).is_file(), name
    for flavour in gen.SFT_FLAVOURS:
        path = tmp_path / f"sft_{flavour}.parquet"
        rows = read_sft_rows(path)
        ds = ToolSFTDataset(str(path), tiny_tokenizer, OmegaConf.create({"max_length": 1024, "truncation": "error", "pad_mode": "no_padding"}))
        assert len(ds) == len(rows) == 8 and all(ds[i]["loss_mask"].sum() > 0 for i in range(len(ds)))
        has_trial = any("<trial>" in (m.get("content") or "") for r in rows for m in r["messages"])
        assert has_trial == (flavour == "trial")
        # only the direct flavour never shows a failed call (levels 2 and 3 are in this world)
        has_error = any(m["role"] == "tool" and m["content"].startswith("Error: ") for r in rows for m in r["messages"])
        assert has_error == (flavour != "direct")


def test_generator_sft_levels_limit_the_sft_rows_not_the_rl_rows(tmp_path):
    out, err = io.StringIO(), io.StringIO()
    argv = ["--out", str(tmp_path), "--seed", "3", "--tools", "10", "--train-tasks", "10", "--test-tasks", "5", "--levels", "1,2,3,4,5",
            "--sft-levels", "1,4", "--no-progress"]
    assert gen.main(argv, out, err) == 0, err.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    assert summary["sft_levels"] == [1, 4] and summary["sft_direct"] == summary["sft_trial"] == summary["sft_selfcorrect"] == 4
    import pandas as pd

    levels = {json.loads(t)["level"] for t in pd.read_parquet(tmp_path / "train_on.parquet")["reward_model"].map(lambda r: r["ground_truth"])}
    assert levels == {1, 2, 3, 4, 5}  # GRPO still sees every level
    tasks = {json.loads(line)["id"]: json.loads(line)["tags"]["level"] for line in open(tmp_path / "tasks_train.jsonl")}
    assert {tasks[r["task_id"]] for r in read_sft_rows(tmp_path / "sft_trial.parquet")} == {1, 4}
    err = io.StringIO()
    assert gen.main(argv[:-3] + ["--sft-levels", "2,6", "--no-progress"], io.StringIO(), err) == 2
    assert "--sft-levels" in err.getvalue()


def test_generator_rl_levels_limit_the_training_rl_rows_not_the_test_rows(tmp_path):
    import pandas as pd

    argv = ["--out", str(tmp_path), "--seed", "3", "--tools", "10", "--train-tasks", "10", "--test-tasks", "6", "--levels", "1,2",
            "--sft-levels", "1", "--no-progress"]
    out, err = io.StringIO(), io.StringIO()
    assert gen.main(argv + ["--rl-levels", "2"], out, err) == 0, err.getvalue()
    summary = json.loads(out.getvalue().strip().splitlines()[-1])
    level = lambda name: [json.loads(r["ground_truth"])["level"] for r in pd.read_parquet(tmp_path / name)["reward_model"]]  # noqa: E731
    assert set(level("train_on.parquet")) == set(level("train_off.parquet")) == {2}  # GRPO meets only what SFT did not show
    assert summary["rl_levels"] == [2] and summary["rl_rows"]["train"] == len(level("train_on.parquet")) == 5
    assert sorted(set(level("test_on.parquet"))) == [1, 2] and summary["rl_rows"]["test"] == 6  # the evaluation keeps both
    tasks = {json.loads(line)["id"]: json.loads(line)["tags"]["level"] for line in open(tmp_path / "tasks_train.jsonl")}
    assert {tasks[r["task_id"]] for r in read_sft_rows(tmp_path / "sft_trial.parquet")} == {1}
    for bad in ("3", "1,x"):
        err = io.StringIO()
        assert gen.main(argv + ["--rl-levels", bad, "--no-sft"], io.StringIO(), err) == 2
        assert "--rl-levels" in err.getvalue(), err.getvalue()


def test_generator_cli_rejects_bad_levels(tmp_path):
    err = io.StringIO()
    assert gen.main(["--out", str(tmp_path), "--levels", "1,6", "--no-sft"], io.StringIO(), err) == 2
    assert "levels must be a non-empty subset" in err.getvalue()


def _prepare(argv):
    """prepare.py in process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    try:
        prepare.run(prepare.build_parser().parse_args(argv), out, err)
        code = 0
    except prepare.InvalidRecord as e:
        err.write(e.message())
        code = 2
    return code, out.getvalue(), err.getvalue()


def test_adapter_reads_generator_tasks_and_names_bad_rows(tasks, tmp_path):
    tw.write_tasks(tasks["test"][:5], tmp_path / "tasks_test.jsonl")
    code, out, _ = _prepare(["--dataset", "toyworld", "--input", str(tmp_path / "tasks_test.jsonl"), "--output", str(tmp_path / "rl.parquet"), "--no-progress"])
    assert code == 0
    assert json.loads(out.strip().splitlines()[-1]) == {"read": 5, "written": 5, "repaired": {}, "skipped": {}}
    adapter = get_adapter("toyworld")()
    converted = [adapter.convert(r) for r in adapter.records(tmp_path / "tasks_test.jsonl")]
    assert [c.to_dict() for c in converted] == [t.to_dict() for t in tasks["test"][:5]]

    bad = tasks["test"][0].to_dict()
    bad["env"]["impl"][next(iter(bad["env"]["impl"]))]["op"] = "divide"
    (tmp_path / "tasks_bad.jsonl").write_text(json.dumps(bad) + "\n")
    code, _, err = _prepare(["--dataset", "toyworld", "--input", str(tmp_path / "tasks_bad.jsonl"), "--output", str(tmp_path / "bad.parquet"), "--no-progress"])
    assert code == 2
    assert "tasks_bad.jsonl, row 0: bad_env:" in err and "unknown op 'divide'" in err
