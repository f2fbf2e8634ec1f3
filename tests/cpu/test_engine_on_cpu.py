"""cpu/engine.py: with one data-parallel rank verl's engine trains the plain module, not an FSDP2 wrapper that shards
nothing; FSDP2 stays wherever it does something (more ranks, offload, a mixed-precision cast) or when asked for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import CPUOffloadPolicy, FSDPModule, MixedPrecisionPolicy

from verl_toolmaster.cpu.engine import KEEP_ENV, make_apply_fsdp2, unwrapped_reason


@pytest.fixture
def mesh(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        yield init_device_mesh("cpu", (1,))
    finally:
        dist.destroy_process_group()


def _model(tiny_model_dir):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def _kwargs(mesh, **extra):
    return {"mesh": mesh, "mp_policy": MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32),
            "offload_policy": None, "reshard_after_forward": True, **extra}


def test_one_rank_skips_the_wrapper_and_training_still_works(tiny_model_dir, mesh):
    from verl.utils.fsdp_utils import apply_fsdp2, fsdp_version

    model = _model(tiny_model_dir)
    make_apply_fsdp2(apply_fsdp2)(model, _kwargs(mesh), {})
    assert fsdp_version(model) == 0 and not any(isinstance(m, FSDPModule) for m in model.modules())
    ids = torch.randint(0, model.config.vocab_size, (2, 12))
    before = [p.detach().clone() for p in model.parameters()]
    model(input_ids=ids, labels=ids).loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))


@pytest.mark.parametrize("case", ["keep_env", "offload", "bf16_cast"])
def test_fsdp2_is_kept_where_it_does_something(tiny_model_dir, mesh, monkeypatch, case):
    from verl.utils.fsdp_utils import apply_fsdp2, fsdp_version

    kwargs = _kwargs(mesh)
    if case == "keep_env":
        monkeypatch.setenv(KEEP_ENV, "1")
    elif case == "offload":
        kwargs["offload_policy"] = CPUOffloadPolicy(pin_memory=False)
    else:
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16)
    model = _model(tiny_model_dir)
    assert unwrapped_reason(model, kwargs) is None
    make_apply_fsdp2(apply_fsdp2)(model, kwargs, {})
    assert fsdp_version(model) == 2


def test_more_than_one_rank_goes_to_verl():
    calls = []
    wrapped = make_apply_fsdp2(lambda model, kwargs, config: calls.append(kwargs["mesh"].size()))
    model = torch.nn.Linear(2, 2)
    wrapped(model, {"mesh": SimpleNamespace(size=lambda: 2), "mp_policy": None, "offload_policy": None}, {})
    assert calls == [2]
    wrapped(model, {"mesh": SimpleNamespace(size=lambda: 1), "mp_policy": None, "offload_policy": None}, {})
    assert calls == [2]  # one rank: verl's function is not called
    assert make_apply_fsdp2(wrapped) is wrapped  # patching twice wraps once


def test_fused_log_probs_match_verls_and_so_do_their_gradients():
    from verl.utils.torch_functional import logprobs_from_logits_v2

    from verl_toolmaster.cpu.engine import logprobs_from_logits

    torch.manual_seed(0)
    logits = torch.randn(2, 7, 50, dtype=torch.float32) * 4
    labels = torch.randint(0, 50, (2, 7))
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    ours, verls = logprobs_from_logits(a, labels), logprobs_from_logits_v2(b, labels)
    assert ours.shape == verls.shape == labels.shape
    torch.testing.assert_close(ours, verls, rtol=0, atol=1e-5)
    weights = torch.randn(2, 7)
    (ours * weights).sum().backward()
    (verls * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=1e-6)
    flat = logprobs_from_logits(logits[0], labels[0])  # (tokens, vocab) as the engine passes it
    torch.testing.assert_close(flat, verls[0].detach(), rtol=0, atol=1e-5)

