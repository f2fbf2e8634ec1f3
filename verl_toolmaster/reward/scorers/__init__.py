"""Per-data-source scorers. Importing a scorer module registers it under its data sources."""

from __future__ import annotations

import importlib

from .base import SCORER_REGISTRY, Episode, Scorer, ScoreResult, register_scorer

# Modules holding the built-in scorers (data sources in brackets).
BUILTIN_SCORER_MODULES = (
    "toolhop",  # toolhop
    "bfcl",  # bfcl_single, bfcl_multi (bfcl-eval is imported on first use)
    "calls",  # apibank, toolrl, rotbench
    "stabletoolbench",  # stabletoolbench
    "toyworld",  # toyworld
)


def load_builtin_scorers() -> dict[str, type[Scorer]]:
    """Import every built-in scorer module and return the registry (data source -> scorer class)."""
    for name in BUILTIN_SCORER_MODULES:
        importlib.import_module(f"{__name__}.{name}")
    return SCORER_REGISTRY


__all__ = [
    "BUILTIN_SCORER_MODULES",
    "Episode",
    "SCORER_REGISTRY",
    "Scorer",
    "ScoreResult",
    "load_builtin_scorers",
    "register_scorer",
]
