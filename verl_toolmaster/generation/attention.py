"""Grouped-query attention for batched decoding on CPU, without copying the KV cache.

transformers' ``sdpa`` attention repeats every key/value head ``num_key_value_groups`` times (a full copy of the
cache, every layer, every step) whenever an attention mask is passed, which a left-padded batch always does
(``use_gqa_in_sdpa``: torch's own ``enable_gqa`` is only used without a mask). For a decode step (one query token)
the query heads that share a key/value head can instead be laid out as that head's query rows: one
``scaled_dot_product_attention`` over the cache as stored, the same numbers. On SmolLM2-135M (9 query heads over 3
key/value heads), 16 rows at ~700 cached tokens, that halves a decode step on 2 cores
(``python bench/generation.py``). Prefill and scoring forwards (more than one query token) keep transformers' sdpa.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import AttentionInterface
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

GROUPED_SDPA = "toolmaster_grouped_sdpa"


def grouped_sdpa_attention(module: torch.nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                           attention_mask: torch.Tensor | None, dropout: float = 0.0, scaling: float | None = None,
                           is_causal: bool | None = None, **kwargs: Any) -> tuple[torch.Tensor, None]:
    """transformers' attention-function signature: ``query`` ``[batch, heads, q, dim]``, ``key``/``value``
    ``[batch, kv_heads, kv, dim]``, a ``[batch, 1, q, kv]`` mask; returns ``[batch, q, heads, dim]``."""
    groups = getattr(module, "num_key_value_groups", 1)
    batch, heads, q_len, dim = query.shape
    if groups == 1 or q_len != 1 or attention_mask is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    # query head h reads key/value head h // groups (transformers' repeat_kv): heads of one group are consecutive
    grouped = query.reshape(batch, heads // groups, groups, dim)
    out = torch.nn.functional.scaled_dot_product_attention(grouped, key, value, attn_mask=attention_mask,
                                                           dropout_p=dropout, scale=scaling)
    return out.reshape(batch, 1, heads, dim), None


def register() -> str:
    """Register the function (and sdpa's mask builder under its name) with transformers; returns the name."""
    AttentionInterface.register(GROUPED_SDPA, grouped_sdpa_attention)  # idempotent: a dict update
    AttentionMaskInterface.register(GROUPED_SDPA, sdpa_mask)
    return GROUPED_SDPA


def use_grouped_decode(model: Any) -> bool:
    """Switch a model running transformers' ``sdpa`` to :func:`grouped_sdpa_attention`; other implementations
    (eager, flash, a user's own) are left as they are. Returns whether it switched."""
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(model, "set_attn_implementation"):
        return False
    model.set_attn_implementation(register())
    return True
