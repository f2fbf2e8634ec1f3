"""Helpers for the evaluation-harness tests: prepare data in-process, run the CLI in-process, read outputs."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

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


# ------------------------------------------------------------------------------------------- report pages in Chromium

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install -y chromium); the report is not browser-checked"
)
CONSOLE = re.compile(r":CONSOLE[:(]")


def load(path: Path) -> tuple[str, list[str]]:
    """(serialised DOM, console messages) of a file opened in headless Chromium."""
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", "--dump-dom", path.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout, [line for line in proc.stderr.splitlines() if CONSOLE.search(line)]


class Parsed(HTMLParser):
    """Elements, attributes and text of a serialised DOM."""

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))

    def handle_data(self, data):
        self.text.append(data)
