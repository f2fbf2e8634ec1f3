"""Shared fixtures: the benchmark data beside the repository and the offline tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """``$TOOLMASTER_SHARED_DATA`` or ``../shared/data`` next to the repository (how CI lays it out)."""
    env = os.environ.get("TOOLMASTER_SHARED_DATA")
    path = Path(env) if env else REPO_ROOT.parent / "shared" / "data"
    return path.resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"benchmark data not found at {path}; set TOOLMASTER_SHARED_DATA or place shared/ beside the repo")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """The offline tiny Qwen2.5-style model + tokenizer, built once per test session (~5 s)."""
    from verl_toolmaster.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("tiny_model"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


# Hypothesis: CI draws the same examples on every run (a property test that fails only on some draws would
# reject good work at random); local runs explore with fresh random draws. Failures found while exploring
# become explicit @example()s. Choose with HYPOTHESIS_PROFILE=ci|explore; default: ci when $CI is set.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("explore", print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore"))
