"""verl's FSDP engine on CPU: three replacements in ``verl.workers.engine.fsdp.transformer_impl``, each measured by
``bench/cpu_training.py`` (docs/models.md, "Operator-level profiles, and the fixes").

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

**Log-probs only where PPO reads them.** Without remove-padding (flash-attn's varlen attention, GPU only) verl's
``prepare_model_outputs`` copies the padded logits of a micro-batch into a packed tensor (``cat`` of the rows: one
more logits-sized copy, and as much again in its backward) and takes the log-probability at every token, prompt
included, though its PPO losses and the trainer read the response tokens only (``no_padding_2_padding``). With
~500-token prompts and ~150-token responses that is 4x the log-softmax work on 0.5 GB buffers per micro-batch.
For micro-batches with ``prompts`` and ``responses`` (every PPO actor and reference pass) and nothing else asked
of the logits (no entropy, no sum of squared probabilities, no distillation, no fused kernels) the replacement
gathers the response rows from the padded logits and fills the prompt positions with 0. Anything else (SFT,
entropy, remove-padding) goes to verl's method unchanged.
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


def prompt_response_lens(data: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row prompt and response token counts of a micro-batch, read as verl's ``no_padding_2_padding`` reads
    them (nested ``prompts``/``responses``, or padded ones with ``attention_mask``)."""
    prompts, responses = data["prompts"], data["responses"]
    if prompts.is_nested:
        return prompts.offsets().diff(), responses.offsets().diff()
    mask = data["attention_mask"]
    return mask[:, : prompts.shape[1]].sum(dim=1), mask[:, prompts.shape[1] :].sum(dim=1)


def response_log_probs(logits: torch.Tensor, labels: torch.Tensor, cu_seqlens: torch.Tensor,
                       prompt_lens: torch.Tensor, response_lens: torch.Tensor,
                       temperature: torch.Tensor | None = None) -> torch.Tensor:
    """Packed ``(total_tokens,)`` log-probs from right-padded ``logits`` ``(rows, max_len, vocab)``: at the positions
    that predict a response token (``prompt_len - 1`` to ``prompt_len + response_len - 2`` of each row) the
    log-probability of ``labels`` (the packed ids rolled left by one), scaled by the row's ``temperature`` if
    given; 0 at every other position. ``cu_seqlens`` are the rows' offsets in the packed tensor."""
    rows, max_len, vocab = logits.shape
    seq_lens = cu_seqlens.diff()
    if not torch.equal(prompt_lens + response_lens, seq_lens):
        raise ValueError(f"prompt + response lengths {(prompt_lens + response_lens).tolist()} do not match the "
                         f"packed rows' lengths {seq_lens.tolist()}")
    if bool((prompt_lens < 1).any()):
        raise ValueError(f"every row needs a prompt token before its response; prompt lengths {prompt_lens.tolist()}")
    row = torch.repeat_interleave(torch.arange(rows, device=logits.device), response_lens)
    first = torch.cumsum(response_lens, 0) - response_lens  # each row's first index among the response tokens
    pos = torch.arange(row.numel(), device=logits.device) - first[row] + (prompt_lens - 1)[row]
    picked = logits.reshape(rows * max_len, vocab).index_select(0, row * max_len + pos)
    if temperature is not None:
        picked = picked / temperature.clamp(min=1e-8).to(picked.dtype)[row, None]
    flat = cu_seqlens[:-1][row] + pos
    lp = logprobs_from_logits(picked, labels[flat])
    # lp's dtype, not the logits': under bf16 autocast cross_entropy computes in fp32, as it does on verl's path
    return lp.new_zeros(int(cu_seqlens[-1])).index_put((flat,), lp)


def _response_only(micro_batch: Any, output_args: dict) -> bool:
    from ..compat import DatasetPadMode, get_non_tensor_data

    def flag(key: str, default: Any) -> Any:
        return get_non_tensor_data(data=micro_batch, key=key, default=default)

    return (not flag("use_remove_padding", True) and flag("pad_mode", DatasetPadMode.NO_PADDING) == DatasetPadMode.NO_PADDING
            and not any(flag(k, False) for k in ("use_fused_kernels", "calculate_entropy", "calculate_sum_pi_squared",
                                                 "distillation_use_topk", "distillation_only"))
            and "prompts" in micro_batch.keys() and "responses" in micro_batch.keys()
            and "temperature" in output_args and "input_ids_rmpad_rolled" in output_args)


def make_prepare_model_outputs(original: Callable[..., Any]) -> Callable[..., Any]:
    """``FSDPEngineWithLMHead.prepare_model_outputs`` computing log-probs at response tokens only where
    :func:`_response_only` allows; verl's own method otherwise."""
    if getattr(original, "_toolmaster_cpu", False):
        return original

    def prepare_model_outputs(self: Any, output: Any, output_args: dict, micro_batch: Any,
                              logits_processor_func: Any) -> dict:
        logits = output.logits
        # a DTensor (tensor parallel) is a Tensor subclass: it goes to verl
        if type(logits) is not torch.Tensor or logits.dim() != 3 or not _response_only(micro_batch, output_args):
            return original(self, output, output_args, micro_batch, logits_processor_func)
        cu_seqlens = micro_batch["input_ids"].offsets()
        prompt_lens, response_lens = prompt_response_lens(micro_batch)
        temperature = None if output_args.get("temperature_is_one", False) else output_args["temperature"]
        packed = response_log_probs(logits, output_args["input_ids_rmpad_rolled"], cu_seqlens,
                                    prompt_lens.to(cu_seqlens.device), response_lens.to(cu_seqlens.device), temperature)
        return {"log_probs": torch.nested.nested_tensor_from_jagged(packed, cu_seqlens)}

    prepare_model_outputs._toolmaster_cpu = True  # type: ignore[attr-defined]
    prepare_model_outputs._toolmaster_original = original  # type: ignore[attr-defined]
    return prepare_model_outputs


def patch_module(module: ModuleType) -> None:
    """Replace ``apply_fsdp2`` and ``logprobs_from_logits`` in verl's FSDP engine module (it imported both by name)
    and ``FSDPEngineWithLMHead.prepare_model_outputs`` (subclasses that do not override it inherit the change)."""
    module.apply_fsdp2 = make_apply_fsdp2(module.apply_fsdp2)
    module.logprobs_from_logits = logprobs_from_logits
    cls = module.FSDPEngineWithLMHead
    cls.prepare_model_outputs = make_prepare_model_outputs(cls.prepare_model_outputs)
