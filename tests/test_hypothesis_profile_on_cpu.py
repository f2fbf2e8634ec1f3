"""CI's hypothesis runs are deterministic: two runs under CI=1 draw the same examples; explore runs differ."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = '''
from hypothesis import given, strategies as st

@given(st.integers())
def test_draw(x):
    with open(__import__("os").environ["DRAWS_OUT"], "a") as f:
        f.write(f"{x}\\n")
'''


def _draws(tmp_path: Path, run: int, profile_env: dict[str, str]) -> list[str]:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir(exist_ok=True)
    (probe_dir / "conftest.py").write_text((REPO / "tests" / "conftest.py").read_text())
    (probe_dir / "test_probe.py").write_text(_PROBE)
    out = tmp_path / f"draws{run}.txt"
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "HYPOTHESIS_PROFILE")}
    env.update(profile_env, DRAWS_OUT=str(out), PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe_dir)],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out.read_text().split()


def test_ci_profile_draws_the_same_examples_every_run(tmp_path):
    first, second = _draws(tmp_path, 1, {"CI": "true"}), _draws(tmp_path, 2, {"CI": "true"})
    assert len(first) >= 50 and first == second


def test_explore_profile_draws_fresh_examples(tmp_path):
    first, second = _draws(tmp_path, 1, {"HYPOTHESIS_PROFILE": "explore"}), _draws(tmp_path, 2, {"HYPOTHESIS_PROFILE": "explore"})
    assert len(first) >= 50 and first != second
