"""A prompt longer than rollout.prompt_length is cut by verl; the loop records it and the step metrics count it."""

from __future__ import annotations

import logging

from loop_harness import T, make_config, row, run_rows

from verl_toolmaster import registration
from verl_toolmaster.registration import step_metrics


def test_over_long_prompt_is_recorded_counted_and_warned_once(base_config, caplog, monkeypatch):
    monkeypatch.setattr(registration, "_TRUNCATION_WARNED", False)
    scripts = {"short": [T("answer", "1")], "long": [T("answer", "2")]}
    long_row = row("long", index=1)
    long_row["raw_prompt"][0]["content"] += " Background:" + " more background" * 3000  # the start of the prompt is lost
    rows = [row("short", index=0), long_row]
    run = run_rows(make_config(base_config), rows, scripts)
    short, long = run.info(0), run.info(1)
    limit = base_config.actor_rollout_ref.rollout.prompt_length
    assert short["prompt_truncated"] is False and short["prompt_tokens"] <= limit
    assert long["prompt_truncated"] is True and long["prompt_tokens"] > limit and long["prompt_limit"] == limit
    assert len(run.out.batch["prompts"][1]) == limit  # what verl kept
    extra = [{"toolmaster": run.info(i)} for i in range(2)]
    with caplog.at_level(logging.WARNING, logger="verl_toolmaster.registration"):
        m = step_metrics(extra)
        step_metrics(extra)  # a second step: no second warning
    assert m["toolmaster/prompt_truncated/count"] == 1.0 and m["toolmaster/prompt_truncated/share"] == 0.5
    assert m["toolmaster/prompt_tokens/max"] == float(long["prompt_tokens"])
    warnings = [r.getMessage() for r in caplog.records if "left-truncated" in r.getMessage()]
    assert len(warnings) == 1 and f"row 1, needs {long['prompt_tokens']} tokens" in warnings[0], warnings
