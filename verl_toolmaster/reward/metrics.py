"""Step metrics from the reward's per-trajectory ``reward_extra_info`` (for the trainer's step-metrics hook).

verl 0.9.1's V1 trainer logs ``reward_extra_info`` only in validation (``val-aux/<source>/<key>/mean@N``; str
values are skipped there). During training the dicts sit in each trajectory's ``extra_fields["reward_extra_info"]``
(TransferQueue), next to ``extra_fields["toolmaster"]``; :func:`reward_step_metrics` turns a step's worth of
them into ``reward/<key>`` means and ``reward/reason/<reason>`` fractions.
"""

from __future__ import annotations

import math
from typing import Any, Iterable

PREFIX = "reward/"


def reward_step_metrics(infos: Iterable[dict[str, Any] | None]) -> dict[str, float]:
    """Mean of every numeric key over the trajectories that have it (None = not applicable, skipped), and the
    share of each ``reason``. Trajectories without reward info (``None``) are skipped; none at all gives ``{}``."""
    infos = [i for i in infos if isinstance(i, dict)]
    if not infos:
        return {}
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    reasons: dict[str, int] = {}
    for info in infos:
        for key, value in info.items():
            if key == "reason":
                reasons[str(value)] = reasons.get(str(value), 0) + 1
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                sums[key] = sums.get(key, 0.0) + float(value)
                counts[key] = counts.get(key, 0) + 1
    out = {f"{PREFIX}{key}/mean": sums[key] / counts[key] for key in sorted(sums)}
    out.update({f"{PREFIX}reason/{r}": n / len(infos) for r, n in sorted(reasons.items())})
    return out
