"""cpu/engine.py: with one data-parallel rank verl's engine trains the plain module, not an FSDP2 wrapper that shards
nothing; FSDP2 stays wherever it does something (more ranks, offload, a mixed-precision cast) or when asked for. The
fused log-probs, and the log-probs at response tokens only, equal verl's where verl's losses read them."""

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



# ------------------------------------------------------------------ log-probs at response tokens only

VOCAB = 40


def _ppo_micro_batch(prompt_lens, response_lens, *, entropy=False):
    """A micro-batch as verl's actor sees it: left-padded prompts, right-padded responses, then verl's own
    ``left_right_2_no_padding``, plus the flags the trainer sets."""
    from verl.utils import tensordict_utils as tu
    from verl.workers.utils.padding import left_right_2_no_padding

    rows, pmax, rmax = len(prompt_lens), max(prompt_lens), max(response_lens)
    prompts = torch.zeros(rows, pmax, dtype=torch.long)
    responses = torch.zeros(rows, rmax, dtype=torch.long)
    mask = torch.zeros(rows, pmax + rmax, dtype=torch.long)
    for i, (p, r) in enumerate(zip(prompt_lens, response_lens)):
        prompts[i, pmax - p :] = torch.randint(1, VOCAB, (p,))
        responses[i, :r] = torch.randint(1, VOCAB, (r,))
        mask[i, pmax - p : pmax + r] = 1
    data = tu.get_tensordict({"prompts": prompts, "responses": responses, "input_ids": torch.cat([prompts, responses], 1),
                              "attention_mask": mask, "response_mask": mask[:, pmax:],
                              "position_ids": (mask.cumsum(1) - 1).clamp(min=0)})
    data = left_right_2_no_padding(data)
    tu.assign_non_tensor(data, use_remove_padding=False, calculate_entropy=entropy, use_fused_kernels=False)
    return data


def _output_args(data, temperature):
    rows = data["input_ids"].offsets().numel() - 1
    return {"temperature_is_one": temperature == 1.0, "temperature": torch.full((rows,), float(temperature)),
            "input_ids_rmpad_rolled": torch.roll(data["input_ids"].values(), shifts=-1, dims=0)}


def _verls_prepare_model_outputs():
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead

    method = FSDPEngineWithLMHead.prepare_model_outputs
    return getattr(method, "_toolmaster_original", method)


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_response_only_log_probs_equal_verls_where_ppo_reads_them(temperature):
    from verl.workers.utils.padding import no_padding_2_padding

    from verl_toolmaster.cpu.engine import make_prepare_model_outputs

    torch.manual_seed(0)
    data = _ppo_micro_batch([5, 3, 6], [4, 7, 1])
    max_len = int(data["input_ids"].offsets().diff().max())
    logits = torch.randn(3, max_len, VOCAB) * 3
    verls, ours = _verls_prepare_model_outputs(), make_prepare_model_outputs(_verls_prepare_model_outputs())
    engine = SimpleNamespace(engine_config=SimpleNamespace(entropy_checkpointing=False))
    a, b = logits.clone().requires_grad_(), logits.clone().requires_grad_()
    got = ours(engine, SimpleNamespace(logits=a), _output_args(data, temperature), data, None)
    want = verls(engine, SimpleNamespace(logits=b), _output_args(data, temperature), data, None)
    assert set(got) == {"log_probs"} and got["log_probs"].is_nested
    lp_ours, lp_verl = no_padding_2_padding(got["log_probs"], data), no_padding_2_padding(want["log_probs"], data)
    assert lp_ours.shape == (3, 7)
    torch.testing.assert_close(lp_ours, lp_verl, rtol=0, atol=1e-5)
    assert bool((lp_ours[0, :4] < 0).all())  # real log-probs, not the zero fill
    weights = torch.randn(3, 7) * data["response_mask"]
    (lp_ours * weights).sum().backward()
    (lp_verl * weights).sum().backward()
    torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-6)  # temperature: one rounding apart
    assert a.grad.abs().sum() > 0


def test_other_micro_batches_go_to_verls_method():
    from verl_toolmaster.cpu.engine import make_prepare_model_outputs

    calls = []
    wrapped = make_prepare_model_outputs(lambda *args: calls.append(args) or {"from": "verl"})
    entropy = _ppo_micro_batch([2, 3], [2, 2], entropy=True)  # entropy is asked of the logits
    logits = SimpleNamespace(logits=torch.randn(2, 5, VOCAB))
    assert wrapped(None, logits, _output_args(entropy, 1.0), entropy, None) == {"from": "verl"}
    sft = _ppo_micro_batch([2, 3], [2, 2])
    del sft["prompts"], sft["responses"]  # an SFT micro-batch: no prompt/response split
    assert wrapped(None, logits, _output_args(sft, 1.0), sft, None) == {"from": "verl"}
    assert len(calls) == 2
    assert make_prepare_model_outputs(wrapped) is wrapped  # patching twice wraps once


def test_mismatched_prompt_and_response_lengths_are_an_error():
    from verl_toolmaster.cpu.engine import response_log_probs

    with pytest.raises(ValueError, match="do not match the packed rows"):
        response_log_probs(torch.randn(2, 5, VOCAB), torch.zeros(9, dtype=torch.long), torch.tensor([0, 5, 9]),
                           torch.tensor([2, 2]), torch.tensor([2, 2]))


def test_response_only_log_probs_under_bf16_autocast(monkeypatch):
    """The tiny recipes train in bf16: cross_entropy then computes in fp32 and the packed result takes its dtype, as on
    verl's path with the fused log-probs the CPU backend installs there."""
    import verl.workers.engine.fsdp.transformer_impl as ti

    from verl_toolmaster.cpu.engine import logprobs_from_logits, make_prepare_model_outputs

    monkeypatch.setattr(ti, "logprobs_from_logits", logprobs_from_logits)

    torch.manual_seed(0)
    data = _ppo_micro_batch([3, 4], [2, 3])
    logits = torch.randn(2, 7, VOCAB, dtype=torch.bfloat16)
    ours = make_prepare_model_outputs(_verls_prepare_model_outputs())
    engine = SimpleNamespace(engine_config=SimpleNamespace(entropy_checkpointing=False))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = ours(engine, SimpleNamespace(logits=logits), _output_args(data, 1.0), data, None)["log_probs"]
        want = _verls_prepare_model_outputs()(engine, SimpleNamespace(logits=logits), _output_args(data, 1.0), data, None)
    from verl.workers.utils.padding import no_padding_2_padding

    assert got.dtype == want["log_probs"].dtype == torch.float32
    torch.testing.assert_close(no_padding_2_padding(got, data), no_padding_2_padding(want["log_probs"], data))
