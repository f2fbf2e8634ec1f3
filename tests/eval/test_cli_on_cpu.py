"""The command line: documented options, clear errors, row selection, resuming, trial-mode A/B runs,
training recipes as config, and logging through verl's logger."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from eval_helpers import run_cli

from verl_toolmaster.eval.cli import build_parser

REPO = Path(__file__).resolve().parents[2]


def test_help_documents_every_option(capsys):
    parser = build_parser()
    with pytest.raises(SystemExit) as exc:
        parser.parse_args(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for action in parser._actions:
        for flag in action.option_strings:
            assert flag in text, flag
        assert action.help and len(action.help) > 10, action.option_strings
    assert "exit codes" in text and "docs/evaluation.md" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--policy", "hf"], "--policy hf needs --model PATH"),
        (["--policy", "openai", "--model", "m"], "--policy openai needs --base-url"),
        (["--policy", "openai", "--base-url", "http://127.0.0.1:1/v1"], "--policy openai needs --model NAME or $OPENAI_MODEL"),
        (["--policy", "gold", "--ids", "toolhop-001,nope-1"], "--ids: no row with id nope-1"),
        (["--policy", "gold", "--limit", "0"], "--limit must be an integer >= 1"),
        (["--policy", "gold", "--override", "+actor_rollout_ref.rollout.custom.toolmaster.no_such_key=1"], "unknown key(s) ['no_such_key']"),
        (["--policy", "gold", "--override", "not_a_key=1"], "cannot compose verl's ppo_trainer config"),
        (["--policy", "gold", "--openai-extra-body", "{oops"], "--openai-extra-body is not JSON"),
    ],
)
def test_bad_options_exit_2_naming_the_problem(args, message, prepared, tmp_path, capsys, eval_cache, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    run = run_cli(capsys, prepared("toolhop"), tmp_path / "out", *args, cache=eval_cache)
    assert run.code == 2 and message in run.stderr, run.stderr


def test_missing_data_file_exits_2(tmp_path, capsys):
    run = run_cli(capsys, tmp_path / "nope.parquet", tmp_path / "out", "--policy", "gold")
    assert run.code == 2 and "nope.parquet: no such file" in run.stderr


def test_limit_then_full_run_resumes_and_a_killed_line_runs_again(prepared, tmp_path, capsys, eval_cache):
    parquet, out = prepared("toolhop"), tmp_path / "out"
    first = run_cli(capsys, parquet, out, "--policy", "gold", "--limit", "6", cache=eval_cache)
    assert first.code == 0 and [t["id"] for t in first.trajectories()][:5] == ["toolhop-001", "toolhop-002", "toolhop-003", "toolhop-006", "toolhop-007"]
    assert first.metrics["run"]["selected"] == 6 and first.metrics["overall"]["n"] == 1  # 5 of the 6 have no gold
    # a run killed while writing its last line
    lines = (out / "trajectories.jsonl").read_text().splitlines(keepends=True)
    (out / "trajectories.jsonl").write_text("".join(lines[:-1]) + lines[-1][: len(lines[-1]) // 2])
    second = run_cli(capsys, parquet, out, "--policy", "gold", cache=eval_cache)
    assert second.code == 0 and "dropped a cut last line" in second.stderr
    trajs = second.trajectories()
    assert len(trajs) == 10 and len({t["id"] for t in trajs}) == 10
    assert second.metrics["run"]["resumed"] == 5 and second.metrics["run"]["finished_now"] == 5
    assert second.metrics["overall"]["n"] == 5 and second.metrics["overall"]["answer"] == 1.0
    only = run_cli(capsys, parquet, out, "--policy", "gold", "--ids", "toolhop-019,toolhop-021", cache=eval_cache)
    assert only.metrics["run"]["finished_now"] == 0 and only.metrics["overall"]["n"] == 2  # metrics cover the selection


def test_trial_mode_ab_runs(prepared, tmp_path, capsys, eval_cache):
    parquet = prepared("toolhop")
    on = run_cli(capsys, parquet, tmp_path / "on", "--policy", "gold", cache=eval_cache)
    off = run_cli(capsys, parquet, tmp_path / "off", "--policy", "gold", "--trial-mode", "off", cache=eval_cache)
    keep = run_cli(capsys, parquet, tmp_path / "keep", "--policy", "gold", "--trial-mode", "off", "--system-prompt", "row", "--ids", "toolhop-019", cache=eval_cache)
    assert on.code == off.code == keep.code == 0
    m_on, m_off = on.metrics["overall"], off.metrics["overall"]
    assert m_on["answer"] == m_off["answer"] == 1.0
    assert m_on["trial_calls"] == 1.0 and m_off["trial_calls"] == 0.0 and m_off["execute_calls"] == m_on["execute_calls"]
    t_off = next(t for t in off.trajectories() if t["status"] == "ok")
    assert t_off["trial_mode"] == "off" and t_off["system_prompt"] == "protocol-off"
    assert {u["phase"] for u in t_off["turns"]} == {"execute", "answer"} and t_off["turns"][0]["text"].startswith("<tool_call>")
    assert keep.trajectories()[0]["system_prompt"] == "row"
    assert json.loads((tmp_path / "off" / "run.json").read_text())["loop"]["trial_mode"] == "off"


def test_a_training_recipe_sets_the_loop_and_the_gold_plan_reports_what_does_not_fit(prepared, tmp_path, capsys, eval_cache):
    """recipes/cpu/grpo_tiny.yaml: 6 assistant turns, 4 execute replies, 2 parallel calls. A 5-hop ToolHop trace
    cannot be replayed within that (no packing with parallel calls): the row says so, and the loop's budget
    violation shows in its format (ToolHop scores only the final answer, which the oracle still gives)."""
    recipe = REPO / "recipes" / "cpu" / "grpo_tiny.yaml"
    if not recipe.is_file():
        pytest.skip(f"{recipe} is not in this checkout")
    run = run_cli(capsys, prepared("toolhop"), tmp_path / "out", "--policy", "gold", "--config", str(recipe), "--prompt-length", "8192",
                  "--response-length", "2048", cache=eval_cache)
    assert run.code == 0, run.stderr
    loop = json.loads((tmp_path / "out" / "run.json").read_text())["loop"]
    assert (loop["max_turns"], loop["max_execute_turns"], loop["max_trial_turns"], loop["max_parallel_calls"]) == (6, 4, 2, 2)
    for t in run.trajectories():
        if t["status"] != "ok":
            continue
        hops = t["reward"]["toolhop/hops"]
        notes = t["policy_notes"]
        if hops > 4:
            assert notes.get("over_budget") and t["counts"]["violations"].get("execute_budget") == 1, t["id"]
            assert t["reward"]["format"] < 1.0, t["id"]
        else:
            assert not notes.get("over_budget") and t["reward"]["answer"] == 1.0 and t["reward"]["format"] == 1.0, t["id"]


def test_metrics_are_logged_through_verls_tracking(prepared, tmp_path, capsys, eval_cache, monkeypatch):
    log = tmp_path / "verl_log.jsonl"
    monkeypatch.setenv("VERL_FILE_LOGGER_PATH", str(log))
    run = run_cli(capsys, prepared("toolhop"), tmp_path / "out", "--policy", "gold", "--ids", "toolhop-019", "--log-to", "file",
                  "--log-step", "7", cache=eval_cache)
    assert run.code == 0, run.stderr
    (entry,) = [json.loads(line) for line in log.read_text().splitlines()]
    assert entry["step"] == 7
    assert entry["data"] == pytest.approx(run.metrics["verl"])
    assert entry["data"]["val-core/toolhop/acc/mean@1"] == 1.0
