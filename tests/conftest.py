"""Shared fixtures: the benchmark samples shipped in the repository and the offline tiny model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


SAMPLES_DIR = REPO_ROOT / "data_prep" / "samples"


def shared_data_dir() -> Path:
    """The benchmark samples: ``data_prep/samples`` in the repository, or ``$TOOLMASTER_SHARED_DATA`` when set (a
    folder of the same layout, e.g. with larger files). Nothing outside the repository is read unless told to."""
    env = os.environ.get("TOOLMASTER_SHARED_DATA")
    path = Path(env) if env else SAMPLES_DIR
    return path.resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The benchmark sample folder (one sub-folder per benchmark, see :func:`shared_data_dir`)."""
    path = shared_data_dir()
    if not path.is_dir():
        pytest.fail(f"benchmark samples not found at {path} (TOOLMASTER_SHARED_DATA={os.environ.get('TOOLMASTER_SHARED_DATA')!r})")
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


@pytest.fixture(scope="session")
def smollm2_model_dir() -> Path:
    """SmolLM2-135M-Instruct as an HF checkpoint (verl_toolmaster.smollm2), built once into the model cache (~30 s)."""
    from verl_toolmaster import smollm2

    try:
        return smollm2.ensure()
    except smollm2.SmolLM2Unavailable as e:  # scripts/setup.sh installs it; a bare venv may lack it
        pytest.skip(f"SmolLM2 unavailable: {e}")


# Hypothesis: CI draws the same examples on every run (a property test that fails only on some draws would
# reject good work at random); local runs explore with fresh random draws. Failures found while exploring
# become explicit @example()s. Choose with HYPOTHESIS_PROFILE=ci|explore; default: ci when $CI is set.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
_hypothesis_settings.register_profile("explore", print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "explore"))
