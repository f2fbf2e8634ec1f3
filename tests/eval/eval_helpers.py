"""Helpers for the evaluation-harness tests: prepare data in-process, run the CLI in-process, read outputs."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATASETS = {  # shared benchmark -> path under the sample folder handed to prepare.py --input
    "toolhop": "toolhop/toolhop_dev10.jsonl",
    "bfcl": "bfcl",
    "apibank": "apibank/level-1-api_processed.json",
    "toolrl": "toolrl/rlla_4k_test.parquet",
    "rotbench": "rotbench",
    "stabletoolbench": "stabletoolbench/G1_instruction_dev.json",
}


def prepare(dataset: str, source: Path | None, out: Path, *extra: str) -> Path:
    """Run data_prep/prepare.py in-process; returns the parquet it wrote."""
    return prepare_counted(dataset, source, out, *extra)[0]


def prepare_counted(dataset: str, source: Path | None, out: Path, *extra: str) -> tuple[Path, dict[str, Any]]:
    """Run data_prep/prepare.py in-process; returns the parquet and its summary line {"read", "written", "skipped"}."""
    from verl_toolmaster.data.prepare import build_parser, run

    argv = ["--dataset", dataset, "--output", str(out), "--no-progress", *extra]
    if source is not None:
        argv += ["--input", str(source)]
    summary = run(build_parser().parse_args(argv), out=io.StringIO(), err=io.StringIO())
    assert summary.written > 0, f"prepare wrote no rows for {dataset}"
    return out, json.loads(summary.line())


@dataclass
class Run:
    """One in-process ``python -m verl_toolmaster.eval`` run and what it wrote."""

    code: int
    out: Path
    stdout: str
    stderr: str

    @property
    def metrics(self) -> dict[str, Any]:
        return json.loads((self.out / "metrics.json").read_text(encoding="utf-8"))

    def trajectories(self) -> list[dict[str, Any]]:
        path = self.out / "trajectories.jsonl"
        if not path.is_file():
            return []
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_cli(capsys, data: list[Path] | Path, out: Path, *args: str, cache: Path | None = None) -> Run:
    """``python -m verl_toolmaster.eval`` in this process (so verl is imported once per test session)."""
    from verl_toolmaster.eval.cli import main

    data = [data] if isinstance(data, Path) else data
    argv = ["--data", *map(str, data), "--out", str(out), "--no-progress", *args]
    if cache is not None:
        argv += ["--cache-dir", str(cache)]
    code = main(argv)
    cap = capsys.readouterr()
    return Run(code, out, cap.out, cap.err)


def gold_rows(parquet: Path) -> dict[str, bool]:
    """row id -> whether the prepared row carries a gold trace."""
    import pyarrow.parquet as pq

    out = {}
    for row in pq.read_table(parquet).to_pylist():
        extra = row["extra_info"]
        out[extra["task_id"]] = json.loads(extra["gold"]) is not None
    return out
