"""The repository runs from a clone alone: tests and the CPU launch scripts read the benchmark samples shipped in
``data_prep/samples`` and nothing beside the repository unless ``TOOLMASTER_SHARED_DATA`` says so."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLES_DIR = REPO_ROOT / "data_prep" / "samples"


def shared_data_dir() -> Path:
    """tests/conftest.py's resolver, loaded by path (other conftest modules share its module name)."""
    spec = importlib.util.spec_from_file_location("tests_root_conftest", REPO_ROOT / "tests" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.shared_data_dir()

# ways a path beside the repository was spelled (../shared/data, REPO.parent / "shared", parents[2] / "shared")
OUTSIDE = re.compile(r"\.\./shared|\.parent\s*/\s*\"shared\"|parents\[\d\]\s*/\s*\"shared\"")


def test_default_data_dir_is_inside_the_repository(monkeypatch):
    monkeypatch.delenv("TOOLMASTER_SHARED_DATA", raising=False)
    assert shared_data_dir() == SAMPLES_DIR.resolve()
    assert shared_data_dir().is_relative_to(REPO_ROOT)
    for bench in ("toolhop", "bfcl", "apibank", "toolrl", "rotbench", "stabletoolbench"):
        folder = SAMPLES_DIR / bench
        assert (folder / "LICENSE").is_file() and (folder / "PROVENANCE.md").is_file(), folder


def test_no_code_path_defaults_to_a_folder_beside_the_repository():
    roots = ["tests", "recipes", "scripts", "bench", "verl_toolmaster", "data_prep"]
    offenders = []
    for root in roots:
        for path in (REPO_ROOT / root).rglob("*"):
            if path.suffix in (".py", ".sh", ".yaml") and path.is_file() and path != Path(__file__):
                text = path.read_text(encoding="utf-8", errors="replace")
                offenders += [f"{path.relative_to(REPO_ROOT)}: {m.group(0)}" for m in OUTSIDE.finditer(text)]
    assert not offenders, offenders


def test_pipeline_data_stage_runs_in_a_copy_with_nothing_beside_it(tmp_path):
    """``ensure_toolhop_data`` of the main job, in a copy of the repository whose parent holds nothing else."""
    clone = tmp_path / "clone" / "repo"
    for part in ("verl_toolmaster", "data_prep", "recipes"):
        shutil.copytree(REPO_ROOT / part, clone / part, ignore=shutil.ignore_patterns("__pycache__"))
    assert sorted(p.name for p in clone.parent.iterdir()) == ["repo"]
    env = {k: v for k, v in os.environ.items() if k != "TOOLMASTER_SHARED_DATA"}
    env.update(PYTHON=sys.executable, PYTHONPATH=str(clone), TOOLMASTER_OUT=str(tmp_path / "out"))
    proc = subprocess.run(
        ["bash", "-c", 'source recipes/cpu/_common.sh && echo "data: $SHARED_DATA" && ensure_toolhop_data'],
        cwd=clone, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"data: {clone}/data_prep/samples" in proc.stdout
    assert '"read": 10, "written": 10' in proc.stdout
    assert (tmp_path / "out" / "data" / "toolhop.parquet").is_file() and (tmp_path / "out" / "data" / "toolhop_sft.parquet").is_file()
