"""The model policies (``hf``, ``openai``) and the task tokenizer, each policy a verl ``server_manager``.

verl's agent loop talks to its LLM through ``await server_manager.generate(request_id, *, prompt_ids,
sampling_params, **kw) -> TokenOutput``: token ids in, token ids out. Both policies implement exactly that, so
the loop runs unchanged. The gold oracle lives in :mod:`.gold`.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ..generation import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_NUM_SEQS, DEFAULT_PREFIX_CACHE_TOKENS
from ..generation.batcher import BatchGenerator, Sampling
from ..protocol.tags import DEFAULT_STOP_STRINGS
from .rows import Row

logger = logging.getLogger(__name__)


class PolicyError(RuntimeError):
    """The policy cannot produce replies any more (endpoint down or failing, model error): the run stops,
    keeping every finished row for a resumed run."""


# ---------------------------------------------------------------------------------------------- tokenizer


def tiny_tokenizer_dir(cache_dir: Path) -> Path:
    """The offline tiny tokenizer (and model) of :mod:`verl_toolmaster.tiny`, built once into ``cache_dir``.

    The directory name carries a digest of the builder's source and config, so a changed builder gets a
    fresh build; concurrent builders race harmlessly (build in a temp dir, then rename).
    """
    from .. import tiny

    digest = hashlib.sha256(Path(tiny.__file__).read_bytes() + json.dumps(asdict(tiny.TinyConfig()), sort_keys=True).encode()).hexdigest()[:16]
    target = Path(cache_dir) / f"tiny-{digest}"
    if (target / "tokenizer_config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tiny-", dir=target.parent))
    try:
        tiny.build_tiny(tmp)
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished first
            if not (target / "tokenizer_config.json").is_file():
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_tokenizer(path: str) -> tuple[Any, str | None]:
    """(tokenizer, hf model_type or None). The model type picks verl's Continuous Token builder, as in training."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=False)
    except Exception as e:  # noqa: BLE001 - any load failure is one clear message
        raise PolicyError(f"cannot load a tokenizer from {path}: {type(e).__name__}: {e}") from None
    model_type = None
    if (Path(path) / "config.json").is_file():
        try:
            model_type = getattr(AutoConfig.from_pretrained(path), "model_type", None)
        except Exception as e:  # noqa: BLE001 - the generic builder still works; say so
            logger.warning("cannot read model_type from %s/config.json (%s); using verl's generic token builder", path, e)
    return tokenizer, model_type


def stop_token_ids(tokenizer: Any, extra: Any = None) -> list[int]:
    """End-of-turn ids: the tokenizer's eos, the generation config's eos ids (``extra``) and the protocol's stop
    strings when they are single tokens of this vocabulary (``<|im_end|>`` for ChatML templates)."""
    ids: list[int] = []
    candidates: list[Any] = [tokenizer.eos_token_id]
    candidates += list(extra) if isinstance(extra, (list, tuple)) else [extra]
    for s in DEFAULT_STOP_STRINGS:
        tid = tokenizer.convert_tokens_to_ids(s)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            candidates.append(tid)
    for c in candidates:
        if isinstance(c, int) and c >= 0 and c not in ids:
            ids.append(c)
    return ids


# ---------------------------------------------------------------------------------------------- hf


class HFPolicy:
    """``--policy hf``: a local transformers causal LM, one ``generate`` call per assistant turn.

    The loop hands over the exact prompt ids (chat template applied by verl's token builder); the reply runs
    until an end-of-turn token of the chat template or the loop's ``max_tokens``. The turns of concurrent rows
    are decoded together by the shared :class:`~verl_toolmaster.generation.batcher.BatchGenerator` (at most
    ``max_num_seqs`` at once), so ``--concurrency`` is also the largest batch.
    """

    name = "hf"

    def __init__(self, model_path: str, tokenizer: Any, hf_model_type: str | None, tokenizer_path: str, device: str = "auto", dtype: str = "auto",
                 max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS):
        self.model_path = model_path
        self.tokenizer = tokenizer
        self.hf_model_type = hf_model_type
        self.tokenizer_path = tokenizer_path
        self.device_name = device
        self.dtype_name = dtype
        self.max_num_seqs = max_num_seqs
        self.max_batch_tokens = max_batch_tokens
        self.prefix_cache_tokens = prefix_cache_tokens
        self.model: Any = None
        self.engine: BatchGenerator | None = None
        self.stop_ids: list[int] = []

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "model": str(self.model_path), "tokenizer": self.tokenizer_path, "device": self.device_name, "dtype": self.dtype_name,
                "max_num_seqs": self.max_num_seqs, "max_batch_tokens": self.max_batch_tokens, "prefix_cache_tokens": self.prefix_cache_tokens}

    def skip_reason(self, row: Row) -> str | None:
        return None

    async def server_for(self, row: Row) -> "HFPolicy":
        return self

    async def start(self) -> None:
        await asyncio.to_thread(self._load)

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM

        device = self.device_name
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = self.dtype_name
        if dtype == "auto":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        torch_dtype = getattr(torch, dtype, None)
        if not isinstance(torch_dtype, torch.dtype):
            raise PolicyError(f"--dtype {dtype!r} is not a torch dtype")
        try:
            model = AutoModelForCausalLM.from_pretrained(self.model_path, dtype=torch_dtype)
            self.model = model.to(device).eval()
        except Exception as e:  # noqa: BLE001 - one clear message
            raise PolicyError(f"cannot load the model {self.model_path} on {device} ({dtype}): {type(e).__name__}: {e}") from None
        self.device_name, self.dtype_name = device, dtype
        self.stop_ids = stop_token_ids(self.tokenizer, getattr(self.model.generation_config, "eos_token_id", None))
        if not self.stop_ids:
            raise PolicyError(f"{self.model_path}: no end-of-turn token (eos) known; generation could not stop")
        self.engine = BatchGenerator(self.model, max_num_seqs=self.max_num_seqs, max_batch_tokens=self.max_batch_tokens,
                                     prefix_cache_tokens=self.prefix_cache_tokens)

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any) -> Any:
        from .. import compat

        max_tokens = int(sampling_params.get("max_tokens") or 1)
        try:
            gen = await self.engine.generate(list(prompt_ids), max_new_tokens=max_tokens, stop_ids=self.stop_ids,
                                             sampling=Sampling.from_params(sampling_params))
        except Exception as e:  # noqa: BLE001 - a model that fails once fails for every row
            raise PolicyError(f"generation failed on {self.model_path}: {type(e).__name__}: {e}") from e
        log_probs = gen.log_probs if sampling_params.get("logprobs") else None
        return compat.TokenOutput(token_ids=gen.token_ids, log_probs=log_probs, stop_reason="completed" if gen.stopped else "length", num_preempted=0)

    async def close(self) -> None:
        self.model = self.engine = None


# ---------------------------------------------------------------------------------------------- openai

# The openai package's own retry schedule, which this policy used before the shared client: 0.5 s doubling to 8 s.
_BACKOFF_S, _BACKOFF_MAX_S = 0.5, 8.0


class OpenAIPolicy:
    """``--policy openai``: any OpenAI-compatible server (``vllm serve``) through its completions endpoint.

    The prompt goes out as the loop's token ids (``prompt_format="ids"``), so the server continues exactly the
    token sequence the loop built, as verl's own rollout servers do; ``"text"`` sends it decoded instead (for
    servers that take no ids). The reply comes back as the server's token ids when it returns them (vLLM's
    ``return_token_ids``), else as its text tokenized with the task tokenizer, plus the end-of-turn token when
    the server reports a stop. Requests go through the shared :class:`~verl_toolmaster.openai_client.OpenAIEndpoint`:
    connection errors, timeouts and 429/5xx/408/409 are retried ``max_retries`` times with backoff (honouring
    ``Retry-After``); after that, or on any other error, the run stops with a :class:`PolicyError`.
    """

    name = "openai"

    def __init__(self, base_url: str, model: str, api_key: str, tokenizer: Any, hf_model_type: str | None, tokenizer_path: str,
                 prompt_format: str = "ids", extra_body: dict[str, Any] | None = None, timeout_s: float = 600.0, max_retries: int = 2):
        self.base_url = base_url
        self.model = model
        self.api_key = api_key
        self.tokenizer = tokenizer
        self.hf_model_type = hf_model_type
        self.tokenizer_path = tokenizer_path
        self.prompt_format = prompt_format
        self.extra_body = dict(extra_body or {})
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.stop_ids = stop_token_ids(tokenizer)
        self.endpoint: Any = None  # OpenAIEndpoint, from start() to close()
        self.retokenized = 0  # replies that came back as text only

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "model": self.model, "base_url": self.base_url, "tokenizer": self.tokenizer_path,
                "prompt_format": self.prompt_format, "extra_body": self.extra_body}

    def skip_reason(self, row: Row) -> str | None:
        return None

    async def server_for(self, row: Row) -> "OpenAIPolicy":
        return self

    async def start(self) -> None:
        from ..openai_client import OpenAIEndpoint, RetryPolicy

        retry = RetryPolicy(max_retries=self.max_retries, backoff_s=_BACKOFF_S, backoff_max_s=_BACKOFF_MAX_S)
        self.endpoint = OpenAIEndpoint(self.base_url, self.api_key, timeout_s=self.timeout_s, retry=retry)

    async def close(self) -> None:
        if self.endpoint is not None:
            await self.endpoint.close()
            self.endpoint = None

    def _failure(self, e: Any) -> str:
        """The message of a :class:`~verl_toolmaster.openai_client.RequestFailed` that stops the run."""
        where = f"openai endpoint {self.base_url}"
        if e.status is not None:
            retried = f" after {e.retries} retries" if e.transient else ""
            return f"{where} (model {self.model!r}) answered HTTP {e.status}{retried}: {e.detail}"
        if e.kind == "timeout":
            return f"{where} (model {self.model!r}) timed out after {self.timeout_s:g} s ({e.retries} retries)"
        if e.kind == "connection":
            return f"{where} is unreachable ({e.detail}); is the server running?"
        return f"{where}: {e.kind}: {e.detail}"

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any) -> Any:
        from .. import compat
        from ..openai_client import RequestFailed

        prompt: Any = list(prompt_ids)
        if self.prompt_format == "text":
            prompt = self.tokenizer.decode(prompt, skip_special_tokens=False)
        extra = dict(self.extra_body)
        top_k = int(sampling_params.get("top_k") or -1)
        if top_k > 0:
            extra["top_k"] = top_k
        request = {
            "model": self.model,
            "prompt": prompt,
            "max_tokens": int(sampling_params.get("max_tokens") or 1),
            "temperature": float(sampling_params.get("temperature") or 0.0),
            "top_p": float(sampling_params.get("top_p") or 1.0),
            "extra_body": extra or None,
        }
        try:
            resp = await self.endpoint.request(lambda client: client.completions.create(**request))
        except RequestFailed as e:
            raise PolicyError(self._failure(e)) from None
        if not getattr(resp, "choices", None):
            raise PolicyError(f"openai endpoint {self.base_url} returned no choices: {str(resp)[:300]}")
        choice = resp.choices[0]
        ids = getattr(choice, "token_ids", None)
        if ids is None and choice.model_extra:
            ids = choice.model_extra.get("token_ids")
        stopped = choice.finish_reason == "stop"
        if ids is None:  # the server returned text only
            self.retokenized += 1
            ids = self.tokenizer.encode(choice.text or "", add_special_tokens=False)
            if stopped and self.stop_ids and (not ids or ids[-1] not in self.stop_ids):
                ids.append(self.stop_ids[0])
        return compat.TokenOutput(token_ids=[int(t) for t in ids], log_probs=None, stop_reason="completed" if stopped else "length", num_preempted=0)
