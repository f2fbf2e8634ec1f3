"""Grouped decode attention: the same logits as transformers' sdpa on a left-padded batch, without its KV repeat."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicCache

from verl_toolmaster.generation import attention


def load(tiny_model_dir, impl: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32, attn_implementation=impl).eval()


@torch.no_grad()
def padded_decode_logits(model, steps: int = 3) -> torch.Tensor:
    """Prefill a left-padded batch of 3 rows, then ``steps`` one-token decode steps; their logits."""
    gen = torch.Generator().manual_seed(0)
    vocab = model.config.vocab_size
    ids = torch.randint(1, vocab, (3, 12), generator=gen)
    mask = torch.ones(3, 12, dtype=torch.long)
    mask[0, :5] = 0
    mask[2, :2] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = DynamicCache(config=model.config)
    model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    out = []
    for _ in range(steps):
        mask = torch.cat([mask, torch.ones(3, 1, dtype=torch.long)], dim=1)
        positions = positions[:, -1:] + 1
        step = torch.randint(1, vocab, (3, 1), generator=gen)
        out.append(model(input_ids=step, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True).logits)
    return torch.cat(out, dim=1)


def test_grouped_decode_matches_sdpa_on_a_padded_batch(tiny_model_dir, monkeypatch):
    plain = load(tiny_model_dir, "sdpa")
    assert plain.config.num_key_value_heads < plain.config.num_attention_heads  # the tiny model groups its KV heads
    expected = padded_decode_logits(plain)

    grouped = load(tiny_model_dir, "sdpa")
    assert attention.use_grouped_decode(grouped)
    assert grouped.config._attn_implementation == attention.GROUPED_SDPA
    fallbacks = []
    real = attention.sdpa_attention_forward
    monkeypatch.setattr(attention, "sdpa_attention_forward", lambda *a, **k: fallbacks.append(a[1].shape[2]) or real(*a, **k))
    got = padded_decode_logits(grouped)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    layers = grouped.config.num_hidden_layers
    assert fallbacks == [12] * layers  # only the prefill (12 query tokens) took transformers' sdpa; decode was grouped


def test_only_sdpa_models_are_switched(tiny_model_dir):
    eager = load(tiny_model_dir, "eager")
    assert not attention.use_grouped_decode(eager)
    assert eager.config._attn_implementation == "eager"
    assert not attention.use_grouped_decode(object())  # not an HF model: nothing to switch
