"""Hooks the plugin calls once the matching verl module is imported (cheap: no verl import of its own).

* :func:`register_agent_loop` -> on ``verl.experimental.agent_loop.agent_loop``: adds "toolmaster_agent".
* :func:`install_step_metrics` -> on ``verl.trainer.ppo.v1.trainer_base`` (and ``verl.trainer.ppo.ray_trainer``
  for the legacy trainer): adds ``toolmaster/*`` trial/execute counts to every training step's metrics.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

logger = logging.getLogger(__name__)

AGENT_NAME = "toolmaster_agent"
AGENT_LOOP_ENTRY = {"_target_": "verl_toolmaster.agent_loop.ToolMasterAgentLoop"}
EXTRA_KEY = "toolmaster"


def register_agent_loop(registry: dict[str, Any] | None = None) -> None:
    """Put our entry into verl's ``_agent_loop_registry`` (the same dict ``@register`` fills)."""
    if registry is None:
        from . import compat

        registry = compat.agent_loop_registry
    registry[AGENT_NAME] = dict(AGENT_LOOP_ENTRY)


def install_step_metrics(module: Any) -> None:
    """Wrap a trainer module's metric computation so step metrics include :func:`rollout_metrics.step_metrics`.

    Called by the plugin's post-import hook with the module that just finished importing (never another one:
    the legacy trainer is imported while the V1 module is still half-initialised).
    V1 trainer: ``PPOTrainer._compute_metrics`` reads nothing of ``extra_fields``; the wrapper fetches that
    column from TransferQueue for the step's keys. Legacy trainer: ``compute_data_metrics`` sees the batch's
    ``toolmaster`` column directly. Idempotent.
    """
    from .compat import MODULES

    if module.__name__ == MODULES["trainer_v1"]:
        if not getattr(module.PPOTrainer._compute_metrics, "_toolmaster", False):
            module.PPOTrainer._compute_metrics = _wrap_v1(module.PPOTrainer._compute_metrics)
    elif module.__name__ == MODULES["trainer_v0"]:
        if hasattr(module, "compute_data_metrics") and not getattr(module.compute_data_metrics, "_toolmaster", False):
            module.compute_data_metrics = _wrap_v0(module.compute_data_metrics)
    else:
        raise ValueError(f"install_step_metrics: {module.__name__} is not a trainer module we instrument")


def _wrap_v1(original):
    @functools.wraps(original)
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        original(self, batch, metrics, timing_raw, global_steps=global_steps, epoch=epoch)
        metrics.update(_v1_toolmaster_metrics(batch))

    _compute_metrics._toolmaster = True
    return _compute_metrics


def _v1_toolmaster_metrics(batch: Any, kv_batch_get: Any = None) -> dict[str, float]:
    from .rollout_metrics import step_metrics

    try:
        if kv_batch_get is None:
            import transfer_queue as tq

            kv_batch_get = tq.kv_batch_get
        data = kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        extra = list(data["extra_fields"])
    except Exception as e:  # metrics must not kill a training step; the gap is logged
        logger.warning("toolmaster step metrics unavailable: could not read extra_fields: %r", e)
        return {}
    keep = [not (tag or {}).get("is_padding", False) for tag in (batch.tags or [{}] * len(extra))]
    return step_metrics(e.get(EXTRA_KEY) for e, k in zip(extra, keep) if k and isinstance(e, dict))


def _wrap_v0(original):
    @functools.wraps(original)
    def compute_data_metrics(batch, *args, **kwargs):
        from .rollout_metrics import step_metrics

        metrics = original(batch, *args, **kwargs)
        column = batch.non_tensor_batch.get(EXTRA_KEY)
        if column is not None:
            metrics.update(step_metrics(list(column)))
        return metrics

    compute_data_metrics._toolmaster = True
    return compute_data_metrics
