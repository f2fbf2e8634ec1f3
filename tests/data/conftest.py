"""Helpers for the data-preparation tests: run the CLI in-process and read what it wrote."""

from __future__ import annotations

import io
import json

import pytest

from verl_toolmaster.data.prepare import build_parser, main, run


class Prepared:
    """Result of one in-process ``prepare.py`` run."""

    def __init__(self, argv: list[str]):
        self.argv = argv
        self.out, self.err = io.StringIO(), io.StringIO()
        self.summary = run(build_parser().parse_args(argv), out=self.out, err=self.err)
        self.stdout = self.out.getvalue()
        self.stderr = self.err.getvalue()
        self.last = json.loads(self.stdout.strip().splitlines()[-1])


@pytest.fixture
def prepare():
    """``prepare(argv)`` -> :class:`Prepared` (raises what ``run`` raises)."""
    return lambda argv: Prepared([*argv, "--no-progress"])


@pytest.fixture
def prepare_main(capsys):
    """``prepare_main(argv)`` -> (exit code, stdout, stderr) through ``main`` (error handling included)."""

    def call(argv: list[str]) -> tuple[int, str, str]:
        code = main([*argv, "--no-progress"])
        cap = capsys.readouterr()
        return code, cap.out, cap.err

    return call
