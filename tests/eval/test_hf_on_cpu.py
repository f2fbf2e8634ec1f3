"""``--policy hf``: the offline tiny model (random weights) through the real loop on the shared ToolHop rows."""

from __future__ import annotations

import json

from eval_helpers import run_cli


def test_hf_tiny_model_completes_on_shared_toolhop_rows_and_writes_all_outputs(prepared, tiny_model_dir, tmp_path, capsys):
    parquet = prepared("toolhop")
    out = tmp_path / "out"
    run = run_cli(capsys, parquet, out, "--policy", "hf", "--model", str(tiny_model_dir), "--device", "cpu",
                  "--response-length", "128", "--max-tokens-per-turn", "24", "--concurrency", "2",
                  "--hf-max-num-seqs", "2")
    assert run.code == 0, run.stderr
    for name in ("trajectories.jsonl", "metrics.json", "report.html", "run.json"):
        assert (out / name).is_file(), name
    assert not (out / "errors.jsonl").exists()
    trajs = run.trajectories()
    assert len(trajs) == 10 and {t["status"] for t in trajs} == {"ok"}
    metrics = run.metrics
    assert metrics["run"]["complete"] and metrics["overall"]["n"] == 10
    assert set(metrics["by_source"]) == {"toolhop"} and set(metrics["by_split"]) == {"all"}
    assert sum(metrics["overall"]["terminations"].values()) == 10
    assert "no_gold" not in metrics["overall"]  # only the gold policy skips rows
    assert metrics["verl"]["val-core/toolhop/acc/mean@1"] == metrics["by_source"]["toolhop"]["acc"]
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["policy"] == "hf" and run_json["model"] == str(tiny_model_dir) and run_json["device"] == "cpu"
    assert run_json["max_num_seqs"] == 2  # the flag reached the batching engine
    for t in trajs:
        # the sampled text is the model's own: every assistant turn was generated (mask 1), observations not
        assert t["response_tokens"] <= 128 and t["num_turns"] >= 2
        assert t["turns"] and all(u["text"] for u in t["turns"]) and t["turn_texts_aligned"] and t["calls_aligned"]
        lengths = [len(text) for _, text in t["segments"]]
        assert all(lengths) and {label for label, _ in t["segments"]} <= {"trial", "execute", "answer", "observation", "untagged"}
        assert t["reward"]["spans_mismatch"] == 0.0 and t["reward"]["has_record"] == 1.0
        assert t["termination"] in ("answered", "response_budget", "turn_budget", "max_violations", "no_tag_stop")
    html = (out / "report.html").read_text()
    assert html.count("<details>") == 10 and "toolhop-001" in html

