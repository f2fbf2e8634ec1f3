"""``hfcpu``: a rollout backend for verl that serves token-in/token-out generation with an HF model on CPU.

Three pieces, mirroring verl's vLLM backend:
* :class:`HFGenerateServer`, a Ray actor holding the model in ``actor_rollout_ref.rollout.dtype`` (the CPU backend
  pins float32; bfloat16 decodes ~2x faster where the CPU has AVX512-BF16, see :func:`rollout_dtype`);
  ``generate`` returns verl's ``TokenOutput``;
  concurrent requests are decoded together by the shared :class:`~verl_toolmaster.generation.batcher.BatchGenerator`
  (settings: ``actor_rollout_ref.rollout.custom.hfcpu``, see :func:`batching_settings`);
* :class:`HFCPUReplica`, the ``RolloutReplica`` that launches one server per replica;
* :class:`HFCPUServerAdapter`, the ``BaseRollout`` living in the actor worker that pushes updated weights.
A full state dict per weight sync.

Scripted mode, for deterministic multi-turn end-to-end tests: with ``TOOLMASTER_HFCPU_SCRIPT=<file.json>``
(``{"turns": [text, ...]}``) the server answers the k-th assistant turn of every conversation with the k-th
text (the last one repeats) instead of sampling, and returns the model's real log-probs of those tokens from a
forward pass, so the trainer's importance ratios stay exact.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Generator

import ray
import torch

from .. import compat
from ..generation import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_NUM_SEQS, DEFAULT_PREFIX_CACHE_TOKENS
from ..generation.batcher import BatchGenerator, Sampling, reply_log_probs

logger = logging.getLogger(__name__)

ROLLOUT_NAME = "hfcpu"
SCRIPT_ENV = "TOOLMASTER_HFCPU_SCRIPT"


BATCHING_DEFAULTS = {"max_num_seqs": DEFAULT_MAX_NUM_SEQS, "max_batch_tokens": DEFAULT_MAX_BATCH_TOKENS,
                     "prefix_cache_tokens": DEFAULT_PREFIX_CACHE_TOKENS}


def batching_settings(custom: dict[str, Any] | None) -> dict[str, int]:
    """The server's batching engine settings from ``actor_rollout_ref.rollout.custom.hfcpu`` (defaults for the rest)."""
    section = dict((custom or {}).get("hfcpu") or {})
    unknown = set(section) - set(BATCHING_DEFAULTS)
    if unknown:
        raise ValueError(f"actor_rollout_ref.rollout.custom.hfcpu: unknown keys {sorted(unknown)} (known: {', '.join(BATCHING_DEFAULTS)})")
    return {k: int(section[k]) if section.get(k) is not None else v for k, v in BATCHING_DEFAULTS.items()}


def rollout_dtype(dtype: Any) -> torch.dtype:
    """The torch dtype of ``actor_rollout_ref.rollout.dtype`` (verl's names: float32/fp32, bfloat16/bf16, float16/fp16).
    Log-probs are computed from float32 logits whatever the weights; with bfloat16 weights they differ from the
    float32 trainer's, which PPO's ratio then sees (as with vLLM on GPU)."""
    try:
        return compat.PrecisionType.to_dtype(dtype)
    except RuntimeError:
        raise ValueError(f"actor_rollout_ref.rollout.dtype={dtype!r}: expected float32, bfloat16 or float16") from None


def server_actor_name(replica_rank: int) -> str:
    return f"toolmaster_hfcpu_server_{ray.get_runtime_context().get_job_id()}_{replica_rank}"


class HFGenerateServer:
    """Holds a causal LM and answers ``generate`` calls from verl's LLM server client."""

    def __init__(self, model_path: str, prompt_length: int, response_length: int, max_model_len: int | None = None,
                 max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS, dtype: Any = "float32"):
        from transformers import AutoModelForCausalLM, GenerationConfig

        self.model = AutoModelForCausalLM.from_pretrained(
            model_path, dtype=rollout_dtype(dtype), attn_implementation="sdpa"
        ).eval()
        gen_cfg = GenerationConfig.from_model_config(self.model.config)
        eos = gen_cfg.eos_token_id if gen_cfg.eos_token_id is not None else self.model.config.eos_token_id
        self.eos_ids: list[int] = list(eos) if isinstance(eos, (list, tuple)) else ([eos] if eos is not None else [])
        self.pad_id = self.model.config.pad_token_id if self.model.config.pad_token_id is not None else self.eos_ids[0]
        self.prompt_length = prompt_length
        self.response_length = response_length
        self.max_model_len = max_model_len or (prompt_length + response_length)
        self.global_steps: int | None = None
        self.engine = BatchGenerator(self.model, max_num_seqs=max_num_seqs, max_batch_tokens=max_batch_tokens,
                                     prefix_cache_tokens=prefix_cache_tokens)
        self.script: list[list[int]] | None = None
        if os.environ.get(SCRIPT_ENV):
            self._load_script(model_path, os.environ[SCRIPT_ENV])

    def _load_script(self, model_path: str, path: str) -> None:
        from transformers import AutoTokenizer

        with open(path) as f:
            turns = json.load(f)["turns"]
        if not turns or not all(isinstance(t, str) for t in turns):
            raise ValueError(f"{SCRIPT_ENV}={path}: 'turns' must be a non-empty list of strings")
        self.tokenizer = AutoTokenizer.from_pretrained(model_path)
        self.script = [self.tokenizer.encode(t, add_special_tokens=False) for t in turns]
        self._assistant_prefix = self.tokenizer.encode("<|im_start|>assistant\n", add_special_tokens=False)

    async def generate(
        self,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        request_id: str | None = None,
        image_data: Any = None,
        video_data: Any = None,
        **_: Any,
    ):
        if image_data is not None or video_data is not None:
            raise ValueError("the hfcpu rollout serves text-only models; got image/video data")
        params = dict(sampling_params)
        room = self.max_model_len - len(prompt_ids)
        if room < 1:
            raise ValueError(f"prompt of {len(prompt_ids)} tokens leaves no room within max_model_len={self.max_model_len}")
        max_tokens = params.get("max_tokens", params.get("max_new_tokens"))
        if max_tokens is None:
            max_tokens = min(self.response_length, self.prompt_length + self.response_length - len(prompt_ids))
        max_tokens = max(1, min(int(max_tokens), room))
        stop_ids = self.eos_ids + [int(t) for t in params.get("stop_token_ids") or []]
        if self.script is not None:
            token_ids, log_probs = await asyncio.to_thread(self._scripted, list(prompt_ids), params, max_tokens)
        else:
            gen = await self.engine.generate(
                list(prompt_ids), max_new_tokens=max_tokens, stop_ids=stop_ids, sampling=Sampling.from_params(params)
            )
            token_ids, log_probs = gen.token_ids, gen.log_probs
        return compat.TokenOutput(
            token_ids=token_ids,
            log_probs=log_probs,
            stop_reason="completed",
            num_preempted=0,
            extra_fields={"global_steps": self.global_steps},
        )

    @torch.no_grad()
    def _scripted(self, prompt_ids: list[int], params: dict, max_tokens: int):
        prefix, n = self._assistant_prefix, 0
        for i in range(len(prompt_ids) - len(prefix) + 1):
            if prompt_ids[i : i + len(prefix)] == prefix:
                n += 1
        turn = self.script[min(max(n - 1, 0), len(self.script) - 1)][:max_tokens]
        temperature = float(params.get("temperature", 1.0) or 0.0)
        scale = temperature if temperature > 0 else 1.0
        with self.engine.exclusive() as model:
            log_probs = reply_log_probs(model, prompt_ids, turn, scale).tolist()
        return turn, log_probs

    def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps: int | None = None) -> int:
        with self.engine.exclusive(changes_weights=True) as model:  # between two decode steps; drops stale prefix KV
            missing, unexpected = model.load_state_dict(state_dict, strict=False)  # copies cast to the model's dtype
        real_missing = [k for k in missing if not k.endswith("lm_head.weight")]  # tied to the embeddings
        if real_missing or unexpected:
            raise RuntimeError(f"weight sync mismatch: missing={real_missing[:5]} unexpected={unexpected[:5]}")
        if global_steps is not None:
            self.global_steps = global_steps
        return len(state_dict)

    def set_global_steps(self, global_steps: int) -> None:
        self.global_steps = global_steps

    # Lifecycle calls verl's checkpoint manager makes on every replica; nothing to free on CPU.
    async def wake_up(self) -> None: ...
    async def sleep(self) -> None: ...
    async def abort_all_requests(self, reject_request: bool = False) -> None: ...
    async def resume_generation(self) -> None: ...
    async def clear_kv_cache(self) -> None: ...
    async def release_kv_cache(self) -> None: ...
    async def resume_kv_cache(self) -> None: ...
    async def start_profile(self, **kwargs: Any) -> None: ...
    async def stop_profile(self) -> None: ...


class HFCPUReplica(compat.RolloutReplica):
    """One HF-generate server per replica, started as a named CPU-only Ray actor."""

    def rollout_worker_use_gpu(self) -> bool:
        return False

    async def launch_servers(self) -> None:
        model_path = getattr(self.model_config, "local_path", None) or self.model_config.path
        name = server_actor_name(self.replica_rank)
        server = (
            ray.remote(HFGenerateServer)
            .options(name=name, num_cpus=0, max_concurrency=self.max_concurrency)
            .remote(
                model_path=model_path,
                prompt_length=self.config.prompt_length,
                response_length=self.config.response_length,
                max_model_len=self.config.max_model_len,
                dtype=self.config.dtype,
                **batching_settings(self.config.custom),
            )
        )
        self.servers = [server]
        self._server_handle = server
        self._server_address = f"hfcpu-replica-{self.replica_rank}"


class HFCPUServerAdapter(compat.BaseRollout):
    """Lives in each actor worker; rank 0 of every replica pushes the trained weights to its server."""

    def __init__(self, config, model_config, device_mesh, *args, **kwargs):
        super().__init__(config, model_config, device_mesh, *args, **kwargs)
        rank = int(os.environ.get("RANK", 0))
        per_replica = self.config.tensor_model_parallel_size * self.config.data_parallel_size
        self.replica_rank = rank // per_replica
        self.is_leader = rank % per_replica == 0
        self.sleep_level = 1

    async def resume(self, tags: list[str]) -> None:
        return None

    async def release(self) -> None:
        return None

    async def update_weights(
        self, weights: Generator, wire_format: str = "named_tensors", global_steps: int | None = None, **kwargs
    ) -> None:
        if wire_format != "named_tensors":
            raise NotImplementedError(f"hfcpu rollout supports wire_format='named_tensors' only, got {wire_format!r}")
        if kwargs.get("peft_config") is not None:
            raise NotImplementedError("hfcpu rollout does not sync LoRA adapters; use full fine-tuning on CPU")
        state: dict[str, torch.Tensor] = {}
        for name, tensor in weights:  # every rank must drain the generator (DTensor gathers are collective)
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", torch.float32).contiguous()
        if self.is_leader:
            server = ray.get_actor(server_actor_name(self.replica_rank))
            await server.load_weights.remote(state, global_steps)
