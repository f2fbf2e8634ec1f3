"""Evaluation harness: any policy through the training stack's own agent loop, environments and reward.

``python -m verl_toolmaster.eval --data PREPARED.parquet --policy {gold,hf,openai} --out DIR`` (``--help``).

* :mod:`.options`: :class:`EvalOptions`, the run's settings, and the verl trainer config they compose to.
* :mod:`.rows`: prepared RL rows through verl's dataset class; selection, row ids, split and perturbation level.
* :mod:`.policies`: the hf and openai policies, each a verl ``server_manager`` (``async generate -> TokenOutput``).
* :mod:`.gold`: the oracle policy that replays a row's gold trace as protocol text.
* :mod:`.runner`: bounded concurrency, progress, resumability; one ``ToolMasterAgentLoop`` per row, scored by
  the reward manager's ``run_single`` on the batch verl's agent-loop worker would build.
* :mod:`.trajectory`, :mod:`.store`: what is written per row; ``DIR/trajectories.jsonl`` and ``DIR/run.json``.
* :mod:`.metrics`, :mod:`.verl_metrics`: ``DIR/metrics.json``; the same numbers under verl's validation names.
* :mod:`.report`: ``DIR/report.html`` (inline SVG plots and a trajectory viewer, no scripts).

Heavy modules (verl, torch) load on first use, so ``--help`` stays fast.
"""

from __future__ import annotations

from typing import Any

from .options import EvalOptions, OptionsError

__all__ = ["EvalOptions", "EvalSummary", "OptionsError", "evaluate"]


def __getattr__(name: str) -> Any:
    if name in ("evaluate", "EvalSummary"):
        from . import runner

        return getattr(runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
