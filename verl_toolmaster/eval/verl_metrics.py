"""The evaluation's numbers under the names verl 0.9.1's validation logs, and logging them with verl's logger.

verl validation (``PPOTrainer._validate``) collects, per finished trajectory, the reward score as ``reward``
and every key of the reward manager's ``reward_extra_info``; ``process_validation_metrics`` averages them per
data source (``mean@N`` over the N samples of a prompt, then over prompts), and ``_val_metrics_update``
names them ``val-core/<source>/acc/mean@N`` (the core variable ``acc``, or ``reward`` when there is no
``acc``) and ``val-aux/<source>/<key>/mean@N`` (everything else), plus ``val-aux/num_turns/{min,max,mean}``.
The harness scores with the same reward manager, so the same keys exist per row; :func:`validation_metrics`
feeds them to verl's own ``process_validation_metrics`` and applies the same naming rule (checked against
``_val_metrics_update`` in the tests), with N = 1 sample per row.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def validation_metrics(trajs: list[dict[str, Any]]) -> dict[str, float]:
    """{verl metric name: value} for the rows a policy ran, as verl validation would log them."""
    from .. import compat

    ran = [t for t in trajs if t.get("status") == "ok"]
    if not ran:
        return {}
    sources = [t["data_source"] for t in ran]
    uids = [t["id"] for t in ran]
    infos: dict[str, list[Any]] = {"reward": [float(t["score"]) for t in ran]}
    for key in ran[0]["reward"]:
        infos[key] = [t["reward"].get(key) for t in ran]
    per_source = compat.process_validation_metrics(
        sources, uids, infos, expected_acc_counts={(s, u): 1 for s, u in zip(sources, uids)}
    )
    out = name_like_verl(per_source)
    turns = np.array([t["num_turns"] for t in ran])
    out["val-aux/num_turns/min"] = turns.min()
    out["val-aux/num_turns/max"] = turns.max()
    out["val-aux/num_turns/mean"] = turns.mean()
    return {k: _number(v) for k, v in out.items()}


def name_like_verl(per_source: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    """``_val_metrics_update``'s section rule: the core variable's mean/maj/best at the largest N is val-core."""
    out: dict[str, Any] = {}
    for source, var2metric in per_source.items():
        core = "acc" if "acc" in var2metric else "reward"
        for var, metric2val in var2metric.items():
            n_max = max(int(name.split("@")[-1].split("/")[0]) for name in metric2val)
            for metric, value in metric2val.items():
                is_core = var == core and metric.startswith(("mean", "maj", "best")) and f"@{n_max}" in metric
                out[f"{'val-core' if is_core else 'val-aux'}/{source}/{var}/{metric}"] = value
    return out


def log_with_verl(metrics: dict[str, float], backends: list[str], project: str, experiment: str, step: int, config: Any = None) -> None:
    """Send ``metrics`` through verl's ``Tracking`` (the trainer's logger) at ``step``."""
    from .. import compat

    tracker = compat.Tracking(project_name=project, experiment_name=experiment, default_backend=list(backends), config=config)
    try:
        tracker.log(data=metrics, step=step)
    finally:
        tracker.finish()


def _number(v: Any) -> float:
    return float(v.item() if hasattr(v, "item") else v)
