"""The experiment package sits on top: nothing below imports it, and the data layer does not import synthesis or
evaluation (the ToyWorld generator used to, from data/)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "verl_toolmaster"


def _imports(path: Path) -> set[str]:
    """Absolute names of the verl_toolmaster modules ``path`` imports (relative imports resolved)."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = parts[: len(parts) - node.level] if node.level else []
            mod = ".".join([*base, node.module] if node.module else base)
            out |= {mod} | {f"{mod}.{a.name}" for a in node.names}
    return {m for m in out if m.startswith("verl_toolmaster")}


@pytest.mark.parametrize("layer", ["protocol", "envs", "reward", "data", "synth", "eval", "cpu", "generation"])
def test_nothing_below_imports_the_experiment(layer):
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith("verl_toolmaster.toyworld"))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_data_does_not_import_synthesis_or_evaluation():
    for path in sorted((PACKAGE / "data").rglob("*.py")):
        bad = sorted(m for m in _imports(path) if m.startswith(("verl_toolmaster.synth", "verl_toolmaster.eval")))
        assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


def test_the_import_reader_sees_relative_imports():
    """The check above can fail: the generator's own imports are found."""
    found = _imports(PACKAGE / "toyworld" / "generate.py")
    assert "verl_toolmaster.synth.cli" in found and "verl_toolmaster.toyworld.world" in found
