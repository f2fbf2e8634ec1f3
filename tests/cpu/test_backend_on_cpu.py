"""The CPU backend: registration only when asked for, platform answers, gloo init, HF-generate server."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap

import pytest
import torch


def run_py(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k != "VERL_PLATFORM"}
    full_env.update(env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=full_env,
                          timeout=120)


def test_cpu_backend_registers_only_when_requested():
    code = """
        import verl
        from verl.plugin.platform.platform_manager import PlatformRegistry
        from verl.workers.rollout.replica import RolloutReplicaRegistry
        from verl.workers.rollout import base
        import verl.utils.distributed as d
        print("platform", "cpu" in PlatformRegistry.registered_names())
        print("replica", "hfcpu" in RolloutReplicaRegistry._registry)
        print("adapter", ("hfcpu", "async") in base._ROLLOUT_REGISTRY)
        print("gloo", d.initialize_global_process_group_ray.__module__)
        import verl.workers.engine.fsdp.transformer_impl as ti
        print("fsdp", getattr(ti.apply_fsdp2, "_toolmaster_cpu", False), "logprobs", ti.logprobs_from_logits.__module__,
              "outputs", getattr(ti.FSDPEngineWithLMHead.prepare_model_outputs, "_toolmaster_cpu", False))
        from verl.single_controller.ray.base import RayWorkerGroup
        print("workers", getattr(RayWorkerGroup.__init__, "_toolmaster_cpu", False))
    """
    on = run_py(code, VERL_PLATFORM="cpu")
    assert on.returncode == 0, on.stderr[-2000:]
    assert "platform True" in on.stdout and "replica True" in on.stdout and "adapter True" in on.stdout
    assert "gloo verl_toolmaster.cpu.distributed" in on.stdout and "fsdp True logprobs verl_toolmaster.cpu.engine outputs True" in on.stdout
    assert "workers True" in on.stdout
    off = run_py(code)
    assert off.returncode == 0, off.stderr[-2000:]
    assert "platform False" in off.stdout and "replica False" in off.stdout and "adapter False" in off.stdout
    assert "gloo verl.utils.distributed" in off.stdout and "fsdp False logprobs verl.utils.torch_functional outputs False" in off.stdout
    assert "workers False" in off.stdout


def test_cpu_platform_answers_like_a_device():
    code = """
        import verl, torch
        from verl.utils.device import get_device_name, get_torch_device, get_nccl_backend, get_device_id
        dev = get_torch_device()
        t = torch.ones(2).to(get_device_id())
        print(get_device_name(), get_nccl_backend(), t.device.type, dev.is_available(), dev.device_count(),
              dev.get_device_name(), dev.mem_get_info()[0] > 0)
    """
    proc = run_py(code, VERL_PLATFORM="cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["cpu", "gloo", "cpu", "True", "1", "CPU", "True"]


def test_gloo_process_group_initialises(tmp_path):
    code = f"""
        import os, verl
        os.environ.update(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT="29533")
        from verl.utils import distributed as d
        d.initialize_global_process_group_ray(timeout_second=60)
        import torch.distributed as dist
        print(dist.get_backend(), dist.get_world_size())
    """
    proc = run_py(code, VERL_PLATFORM="cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["gloo", "1"]


def test_unsupported_verl_is_one_clear_line():
    code = """
        from verl_toolmaster import compat
        try:
            compat.check_verl_version("0.8.0")
        except compat.VerlVersionError as e:
            print(e)
    """
    proc = run_py(code)
    assert "supports verl==0.9.1 but verl 0.8.0 is installed" in proc.stdout
    # The plugin path: a mismatch stops `import verl` with exactly one line on stderr and exit code 2.
    stop = run_py("""
        import verl_toolmaster.compat as c
        c.installed_verl_version = lambda: "0.8.0"
        import verl
    """, VERL_PLATFORM="cpu")
    assert stop.returncode == 2
    lines = [ln for ln in stop.stderr.splitlines() if ln.strip() and "Platform override" not in ln]
    assert len(lines) == 1 and lines[0].startswith("error:") and "0.8.0" in lines[0] and "0.9.1" in lines[0], stop.stderr


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    from verl_toolmaster.cpu.rollout import HFGenerateServer

    return HFGenerateServer(str(tiny_model_dir), prompt_length=64, response_length=16)


def test_hf_server_logprobs_match_a_forward_pass(server, tiny_tokenizer):
    prompt = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                                tokenize=False)
    ids = tiny_tokenizer.encode(prompt, add_special_tokens=False)
    torch.manual_seed(0)
    out = asyncio.run(server.generate(prompt_ids=ids, sampling_params={"temperature": 0.7, "top_p": 1.0,
                                                                      "max_tokens": 12, "logprobs": True}))
    assert 1 <= len(out.token_ids) <= 12 and len(out.log_probs) == len(out.token_ids)
    full = torch.tensor([ids + out.token_ids])
    with torch.no_grad():
        logits = server.model(full).logits[0, len(ids) - 1:-1] / 0.7
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(out.log_probs), ref, atol=1e-4)


def test_hf_server_stops_on_stop_tokens_and_budget(server, tiny_tokenizer):
    ids = tiny_tokenizer.encode("<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    out = asyncio.run(server.generate(prompt_ids=ids, sampling_params={"temperature": 0.0}))
    assert len(out.token_ids) <= 16  # response_length caps it
    vocab = server.model.config.vocab_size
    every = list(range(vocab))
    stopped = asyncio.run(server.generate(prompt_ids=ids, sampling_params={"temperature": 1.0, "stop_token_ids": every}))
    assert len(stopped.token_ids) == 1  # any token is a stop token: cut right after it


def test_hf_server_weight_sync_changes_outputs(server, tiny_tokenizer):
    ids = tiny_tokenizer.encode("hello", add_special_tokens=False)
    state = {k: torch.zeros_like(v) for k, v in server.model.state_dict().items()}
    before = {k: v.clone() for k, v in server.model.state_dict().items()}
    asyncio.run(server.generate(prompt_ids=ids, sampling_params={"temperature": 0.0, "max_tokens": 2}))
    assert len(server.engine.prefix_cache) > 0
    try:
        n = server.load_weights(state, global_steps=3)
        assert len(server.engine.prefix_cache) == 0  # KV of the old weights is not reused
        assert n == len(state) and server.global_steps == 3
        out = asyncio.run(server.generate(prompt_ids=ids, sampling_params={"temperature": 0.0, "max_tokens": 2}))
        assert out.extra_fields["global_steps"] == 3
        assert all(abs(lp - (-torch.log(torch.tensor(float(server.model.config.vocab_size))).item())) < 1e-3
                   for lp in out.log_probs)  # all-zero weights give a uniform distribution
        with pytest.raises(RuntimeError, match="weight sync mismatch"):
            server.load_weights({"not.a.weight": torch.zeros(1)})
    finally:
        server.model.load_state_dict(before)


def test_scripted_mode_replays_turns_with_real_logprobs(tiny_model_dir, tiny_tokenizer, tmp_path, monkeypatch):
    from verl_toolmaster.cpu.rollout import SCRIPT_ENV, HFGenerateServer

    script = tmp_path / "script.json"
    script.write_text('{"turns": ["<trial>x</trial><|im_end|>", "<answer>5</answer><|im_end|>"]}')
    monkeypatch.setenv(SCRIPT_ENV, str(script))
    srv = HFGenerateServer(str(tiny_model_dir), prompt_length=256, response_length=64)
    first = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "q"}], add_generation_prompt=True,
                                               tokenize=False)
    ids = tiny_tokenizer.encode(first, add_special_tokens=False)
    out = asyncio.run(srv.generate(prompt_ids=ids, sampling_params={"temperature": 1.0}))
    assert tiny_tokenizer.decode(out.token_ids) == "<trial>x</trial><|im_end|>"
    with torch.no_grad():
        logits = srv.model(torch.tensor([ids + out.token_ids])).logits[0, len(ids) - 1:-1]
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
    assert torch.allclose(torch.tensor(out.log_probs), ref, atol=1e-4)
    second = first + "<trial>x</trial><|im_end|>\n<|im_start|>user\nobs<|im_end|>\n<|im_start|>assistant\n"
    out2 = asyncio.run(srv.generate(prompt_ids=tiny_tokenizer.encode(second, add_special_tokens=False),
                                    sampling_params={"temperature": 1.0}))
    assert tiny_tokenizer.decode(out2.token_ids) == "<answer>5</answer><|im_end|>"


def test_batching_settings_come_from_the_recipe_and_reach_the_server(tiny_model_dir):
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from verl_toolmaster.cpu.rollout import BATCHING_DEFAULTS, HFGenerateServer, batching_settings

    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "cpu")
    with initialize_config_dir(config_dir=os.path.abspath(recipes), version_base=None):
        cfg = compose("grpo_tiny", overrides=["actor_rollout_ref.rollout.custom.hfcpu.max_num_seqs=5",
                                              "actor_rollout_ref.rollout.custom.hfcpu.prefix_cache_tokens=0"])
    custom = OmegaConf.to_container(cfg.actor_rollout_ref.rollout.custom, resolve=True)
    assert custom["toolmaster"]["trial_mode"] == "on"  # the recipe's own section survives the merge
    assert batching_settings(custom) == {**BATCHING_DEFAULTS, "max_num_seqs": 5, "prefix_cache_tokens": 0}
    assert custom["hfcpu"]["max_batch_tokens"] == BATCHING_DEFAULTS["max_batch_tokens"]  # the recipe states the defaults
    assert batching_settings(None) == BATCHING_DEFAULTS
    with pytest.raises(ValueError, match="unknown keys"):
        batching_settings({"hfcpu": {"max_num_seq": 4}})
    srv = HFGenerateServer(str(tiny_model_dir), prompt_length=64, response_length=16, **batching_settings(custom))
    assert srv.engine.max_num_seqs == 5 and srv.engine.prefix_cache is None  # 0 turns it off


def test_hf_server_serves_concurrent_requests_together(server, tiny_tokenizer):
    prompts = [tiny_tokenizer.encode(f"<|im_start|>user\nq{i}<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False) for i in range(6)]

    async def main():
        return await asyncio.gather(*[server.generate(prompt_ids=p, sampling_params={"temperature": 0.0, "max_tokens": 8})
                                      for p in prompts])

    outs = asyncio.run(main())
    assert server.engine.stats["max_rows"] == 6  # the module's other tests send one request at a time
    for p, out in zip(prompts, outs):
        x = torch.tensor([p])
        with torch.no_grad():
            ref = server.model.generate(input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=8, do_sample=False,
                                        eos_token_id=server.eos_ids, pad_token_id=server.pad_id)[0, len(p):].tolist()
        cut = next((i + 1 for i, t in enumerate(ref) if t in server.eos_ids), len(ref))
        assert out.token_ids == ref[:cut]


def test_hf_server_serves_in_the_rollout_dtype(tiny_model_dir, tiny_tokenizer):
    from verl_toolmaster.cpu.rollout import HFGenerateServer, rollout_dtype

    assert rollout_dtype("bf16") is torch.bfloat16 and rollout_dtype("float32") is torch.float32
    with pytest.raises(ValueError, match=r"rollout.dtype='int8'"):
        rollout_dtype("int8")
    srv = HFGenerateServer(str(tiny_model_dir), prompt_length=64, response_length=16, dtype="bfloat16")
    assert {p.dtype for p in srv.model.parameters()} == {torch.bfloat16}
    ids = tiny_tokenizer.encode("<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)
    out = asyncio.run(srv.generate(prompt_ids=ids, sampling_params={"temperature": 0.0, "max_tokens": 6}))
    with torch.no_grad():
        logits = srv.model(torch.tensor([ids + out.token_ids])).logits[0, len(ids) - 1:-1].float()
    ref = torch.log_softmax(logits, -1).gather(-1, torch.tensor(out.token_ids)[:, None])[:, 0]
    # bf16 cached decode vs a bf16 full forward: equal up to bf16 rounding
    assert torch.allclose(torch.tensor(out.log_probs), ref, atol=0.05)
    fp32 = {k: v.float() + 1.0 for k, v in srv.model.state_dict().items()}  # the trainer pushes fp32 weights
    srv.load_weights(fp32)
    w = dict(srv.model.named_parameters())["model.embed_tokens.weight"]
    assert w.dtype is torch.bfloat16 and torch.equal(w, fp32["model.embed_tokens.weight"].to(torch.bfloat16))


@pytest.mark.parametrize("recipe, dtype", [("grpo_tiny", "float32"), ("toyworld_grpo", "bfloat16")])
def test_replica_launches_the_server_in_the_recipe_dtype(recipe, dtype, monkeypatch):
    from types import SimpleNamespace

    from hydra import compose, initialize_config_dir

    import verl_toolmaster.cpu.rollout as rollout

    launched = {}

    class FakeRemote:
        def options(self, **kw):
            return self

        def remote(self, **kw):
            launched.update(kw)
            return "handle"

    fake_ray = SimpleNamespace(remote=lambda cls: FakeRemote(),
                               get_runtime_context=lambda: SimpleNamespace(get_job_id=lambda: "job"))
    monkeypatch.setattr(rollout, "ray", fake_ray)
    recipes = os.path.join(os.path.dirname(__file__), "..", "..", "recipes", "cpu")
    with initialize_config_dir(config_dir=os.path.abspath(recipes), version_base=None):
        cfg = compose(recipe, overrides=["actor_rollout_ref.model.path=/m", "data.train_files=x", "data.val_files=x"]
                      if recipe == "toyworld_grpo" else [])
    replica = rollout.HFCPUReplica(0, cfg.actor_rollout_ref.rollout, SimpleNamespace(local_path="/m", path="/m"), gpus_per_node=1)
    asyncio.run(replica.launch_servers())
    assert launched["dtype"] == dtype and launched["model_path"] == "/m"
