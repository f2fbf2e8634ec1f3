"""Hooks the plugin calls once the matching verl module is imported (cheap: no verl import of its own).

* :func:`register_agent_loop` -> on ``verl.experimental.agent_loop.agent_loop``: adds "toolmaster_agent".
* :func:`install_step_metrics` -> on ``verl.trainer.ppo.v1.trainer_base`` (and ``verl.trainer.ppo.ray_trainer``
  for the legacy trainer): adds ``toolmaster/*`` trial/execute counts, ``reward/*`` components and the GRPO group
  signal (``toolmaster/grpo/zero_spread_share``: groups whose rewards are all equal) to every training step's metrics.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Any

logger = logging.getLogger(__name__)

AGENT_NAME = "toolmaster_agent"
AGENT_LOOP_ENTRY = {"_target_": "verl_toolmaster.agent_loop.ToolMasterAgentLoop"}
EXTRA_KEY = "toolmaster"  # the one extra_fields key the loop writes (besides verl's own bookkeeping keys)


def register_agent_loop(registry: dict[str, Any] | None = None) -> None:
    """Put our entry into verl's ``_agent_loop_registry`` (the same dict ``@register`` fills)."""
    if registry is None:
        from . import compat

        registry = compat.agent_loop_registry
    registry[AGENT_NAME] = dict(AGENT_LOOP_ENTRY)


def install_step_metrics(module: Any = None) -> None:
    """Wrap the trainers' metric computation so every training step also logs :func:`step_metrics`.

    ``module`` is the trainer module a post-import hook just loaded; without it, whichever of the two trainer
    modules is already imported gets patched. V1 trainer (``verl.trainer.ppo.v1.trainer_base``):
    ``PPOTrainer._compute_metrics`` reads nothing of ``extra_fields``, so the wrapper fetches that column from
    TransferQueue for the step's keys. Legacy trainer (``verl.trainer.ppo.ray_trainer``): ``compute_data_metrics``
    sees the batch's ``toolmaster`` and ``reward_extra_info`` columns directly. Idempotent.
    """
    import sys

    from .compat import MODULES

    if module is not None:
        modules = [module]
    else:
        modules = [sys.modules.get(MODULES["trainer_v1"]), sys.modules.get(MODULES["trainer_v0"])]
    for m in modules:
        if m is None:
            continue
        if m.__name__ == MODULES["trainer_v1"]:
            if not getattr(m.PPOTrainer._compute_metrics, "_toolmaster", False):
                m.PPOTrainer._compute_metrics = _wrap_v1(m.PPOTrainer._compute_metrics)
        elif m.__name__ == MODULES["trainer_v0"]:
            if not getattr(m.compute_data_metrics, "_toolmaster", False):
                m.compute_data_metrics = _wrap_v0(m.compute_data_metrics)
        else:
            raise ValueError(f"install_step_metrics: {m.__name__} is not one of the trainer modules {MODULES['trainer_v1']}, {MODULES['trainer_v0']}")


def step_metrics(extra_fields: list[Any]) -> dict[str, float]:
    """``toolmaster/*`` from each trajectory's ``extra_fields["toolmaster"]`` and ``reward/*`` from its
    ``extra_fields["reward_extra_info"]`` (the reward manager's components; verl itself logs those only in
    validation)."""
    from .reward.metrics import reward_step_metrics
    from .rollout_metrics import step_metrics as toolmaster_step_metrics

    dicts = [e for e in extra_fields if isinstance(e, dict)]
    out = toolmaster_step_metrics(e.get(EXTRA_KEY) for e in dicts)
    _warn_truncation_once([e.get(EXTRA_KEY) for e in dicts])
    out.update(reward_step_metrics(e.get("reward_extra_info") for e in dicts))
    if any(isinstance(e.get(EXTRA_KEY), dict) for e in dicts):  # a step of ours: nothing may go missing
        ours = [e for e in extra_fields if not isinstance(e, dict) or isinstance(e.get(EXTRA_KEY), dict)]
        out["toolmaster/missing/termination"] = float(sum(not (isinstance(e, dict) and e[EXTRA_KEY].get("termination")) for e in ours))
        out["toolmaster/missing/reward"] = float(sum(not _has_score(e) for e in ours))
    return out


def _has_score(extra: Any) -> bool:
    info = extra.get("reward_extra_info") if isinstance(extra, dict) else None
    score = info.get("score") if isinstance(info, dict) else None
    return isinstance(score, (int, float)) and math.isfinite(score)


_TRUNCATION_WARNED = False


def _warn_truncation_once(infos: list[Any]) -> None:
    global _TRUNCATION_WARNED
    if _TRUNCATION_WARNED:
        return
    from .rollout_metrics import truncation_warning

    text = truncation_warning(infos)
    if text:
        _TRUNCATION_WARNED = True
        logger.warning(text)


def _wrap_v1(original):
    @functools.wraps(original)
    def _compute_metrics(self, batch, metrics, timing_raw, global_steps, epoch):
        original(self, batch, metrics, timing_raw, global_steps=global_steps, epoch=epoch)
        metrics.update(_v1_step_metrics(batch))

    _compute_metrics._toolmaster = True
    return _compute_metrics


def _v1_step_metrics(batch: Any, kv_batch_get: Any = None) -> dict[str, float]:
    try:
        if kv_batch_get is None:
            import transfer_queue as tq

            kv_batch_get = tq.kv_batch_get
        data = kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                            select_fields=["extra_fields", "response_mask"])
        extra = _plain_rows(data["extra_fields"])
        masks = _mask_rows(data["response_mask"]) if "response_mask" in data else None
    except Exception as e:  # metrics must not kill a training step; the gap is logged
        logger.warning("toolmaster step metrics unavailable: could not read extra_fields: %r", e)
        return {}
    tags = batch.tags or [{}] * len(extra)
    keep = [not (tag or {}).get("is_padding", False) for tag in tags]
    out = step_metrics([e for e, k in zip(extra, keep) if k])
    try:
        uids = _plain_rows(kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["uid"])["uid"])
    except Exception as e:  # the group metrics are lost, the gap is logged
        logger.warning("toolmaster group metrics unavailable: could not read uid: %r", e)
    else:
        out.update(_group_metrics([u for u, k in zip(uids, keep) if k], [e for e, k in zip(extra, keep) if k]))
    if masks is not None:
        from .rollout_metrics import mask_metrics

        out.update(mask_metrics([(e or {}).get(EXTRA_KEY) if isinstance(e, dict) else None for e, k in zip(extra, keep) if k],
                                [m for m, k in zip(masks, keep) if k]))
    return out


def _group_metrics(uids: list[Any], extra: list[Any]) -> dict[str, float]:
    from .rollout_metrics import group_metrics

    return group_metrics(uids, [e.get("reward_extra_info") if isinstance(e, dict) else None for e in extra])


def _mask_rows(column: Any) -> list[list[int]]:
    """``response_mask`` from TransferQueue (a padded tensor, a nested/jagged tensor or a list) as int lists."""
    if getattr(column, "is_nested", False):
        return [row.tolist() for row in column.unbind(0)]
    return [list(row.tolist()) if hasattr(row, "tolist") else list(row) for row in column]


def _plain_rows(column: Any) -> list[Any]:
    """A TransferQueue object column as plain Python values: it comes back as a ``NonTensorStack`` (whose
    items are ``NonTensorData`` wrappers; ``tolist()`` unwraps them) or as a plain list subclass."""
    if hasattr(column, "tolist"):
        return list(column.tolist())
    return [getattr(x, "data", x) if type(x).__name__ == "NonTensorData" else x for x in column]


def _wrap_v0(original):
    @functools.wraps(original)
    def compute_data_metrics(batch, *args, **kwargs):
        metrics = original(batch, *args, **kwargs)
        nt = batch.non_tensor_batch
        n = len(batch)
        ours, rewards = nt.get(EXTRA_KEY), nt.get("reward_extra_info")
        rows = [{EXTRA_KEY: ours[i] if ours is not None else None,
                 "reward_extra_info": rewards[i] if rewards is not None else None} for i in range(n)]
        metrics.update(step_metrics(rows))
        if "uid" in nt:
            metrics.update(_group_metrics(list(nt["uid"]), rows))
        return metrics

    compute_data_metrics._toolmaster = True
    return compute_data_metrics
