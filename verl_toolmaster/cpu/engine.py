"""verl's FSDP engine on CPU: two replacements in ``verl.workers.engine.fsdp.transformer_impl``, both measured by
``bench/cpu_training.py`` (docs/models.md, "Operator-level profiles, and two fixes").

**One data-parallel rank: the plain module instead of an FSDP2-wrapped one.** verl's FSDP engine (``strategy:
fsdp2``, the only one that runs on CPU) wraps every decoder layer in ``fully_shard`` even when the mesh has one
rank. There is nothing to shard then, but FSDP2 still all-gathers each layer's parameters into a separate unsharded
buffer before its forward and again before its backward (copy-in, gloo all-gather, copy-out): 4.1 s of
``aten::copy_`` per 16-row GRPO update on SmolLM2-135M, which a plain loop does not do. verl's engine already handles
an unwrapped module everywhere (``fsdp_version(module) == 0``: gradient sync, clipping, state dicts, weight export),
so the wrapper is skipped when it cannot shard anything. Kept when it matters: more than one rank, an offload
policy, or a mixed-precision ``param_dtype`` other than the parameters' own (FSDP2 casts the parameters; without it
only autocast would). ``TOOLMASTER_CPU_KEEP_FSDP=1`` keeps it always, for comparison.

**Log-probs in one fused op.** Without flash-attn's cross-entropy (a GPU kernel) verl falls back to
``logprobs_from_logits_v2``, which loops over the rows in Python (one ``logsumexp`` per token, to bound GPU memory)
and whose backward stacks one vocabulary-sized gradient per token: ~5 s per 16-row update on SmolLM2.
``-cross_entropy(logits, labels, reduction="none")`` is the same quantity (log-softmax at the label) in one op with a
fused backward; its temporary is one logits-sized tensor, which CPU memory holds.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any, Callable

import torch

KEEP_ENV = "TOOLMASTER_CPU_KEEP_FSDP"


def _mesh_size(mesh: Any) -> int:
    if mesh is not None:
        return int(mesh.size())
    import torch.distributed as dist

    return dist.get_world_size() if dist.is_initialized() else 1


def unwrapped_reason(model: torch.nn.Module, fsdp_kwargs: dict) -> str | None:
    """Why FSDP2 can be skipped for ``model`` (None: it cannot)."""
    if os.environ.get(KEEP_ENV, "").strip() not in ("", "0"):
        return None
    if _mesh_size(fsdp_kwargs.get("mesh")) != 1 or fsdp_kwargs.get("offload_policy") is not None:
        return None
    param_dtype = getattr(fsdp_kwargs.get("mp_policy"), "param_dtype", None)
    if param_dtype is not None and any(p.dtype != param_dtype for p in model.parameters() if p.is_floating_point()):
        return None
    return "one data-parallel rank and no offload or mixed-precision cast: nothing for FSDP2 to shard"


def make_apply_fsdp2(original: Callable[..., Any]) -> Callable[..., Any]:
    """verl's ``apply_fsdp2(model, fsdp_kwargs, config)``, skipped when :func:`unwrapped_reason` allows."""
    if getattr(original, "_toolmaster_cpu", False):
        return original

    def apply_fsdp2(model: torch.nn.Module, fsdp_kwargs: dict, config: Any) -> Any:
        reason = unwrapped_reason(model, fsdp_kwargs)
        if reason is None:
            return original(model, fsdp_kwargs, config)
        print(f"verl_toolmaster.cpu: training {type(model).__name__} without FSDP2 ({reason}; "
              f"{KEEP_ENV}=1 keeps it)", file=sys.stderr, flush=True)
        return None

    apply_fsdp2._toolmaster_cpu = True  # type: ignore[attr-defined]
    return apply_fsdp2


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor, inplace_backward: bool = True) -> torch.Tensor:
    """verl's ``logprobs_from_logits`` (log-probability of each label under ``logits``, shape ``labels.shape``) as one
    fused cross-entropy; ``inplace_backward`` (a flash-attn option) is accepted and ignored."""
    del inplace_backward
    flat = -torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), reduction="none")
    return flat.view(labels.shape)


def patch_module(module: ModuleType) -> None:
    """Replace ``apply_fsdp2`` and ``logprobs_from_logits`` in verl's FSDP engine module (it imported both by name)."""
    module.apply_fsdp2 = make_apply_fsdp2(module.apply_fsdp2)
    module.logprobs_from_logits = logprobs_from_logits
