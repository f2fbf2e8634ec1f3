"""One batching engine for every local HF model we serve: concurrent requests decoded together, one forward per step.

:class:`BatchGenerator` takes ``generate`` calls from many coroutines (verl's agent loop, the evaluation runner) and
serves them from one batch: a new request is prefilled alone (exactly the forward ``model.generate`` runs), then
joins the running rows, and every decode step is one forward of all rows over a left-padded KV cache kept in
preallocated buffers. A row leaves the batch as soon as it stops (a stop token, its own ``max_new_tokens``, or its
caller cancelled), so a short reply never waits for a long one. Sampling is per row: temperature (0 = greedy),
top-k, top-p, repetition penalty and an optional seed; the log-prob returned for each sampled token is
``log_softmax(logits / T)`` (``T = 1`` when greedy), what verl's actor recomputes. A
:class:`~.prefix_cache.PrefixCache` lets a prompt that extends a finished sequence (the next turn) or repeats a
prompt (a GRPO sibling) prefill only its new tokens.

Why not transformers' continuous batching (``init_continuous_batching``): measured and read in
``docs/cpu_backend.md``. In short, its sampling mode (greedy or not) and its seed are per manager, not per request,
its log-probs are taken after top-k/top-p filtering, and weights cannot change under a running manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterator

import torch
from transformers.cache_utils import Cache, DynamicCache, DynamicLayer

from . import DEFAULT_MAX_BATCH_TOKENS, DEFAULT_MAX_NUM_SEQS, DEFAULT_PREFIX_CACHE_TOKENS
from .attention import use_grouped_decode
from .prefix_cache import PrefixCache

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sampling:
    """Per-request sampling: ``temperature <= 0`` is greedy; ``top_k <= 0``, ``top_p >= 1`` and
    ``repetition_penalty == 1`` are off. The penalty (transformers' rule, over prompt and reply) steers the choice
    only; log-probs stay those of the unpenalised logits, as before batching."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = -1
    repetition_penalty: float = 1.0
    seed: int | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "Sampling":
        """From verl's ``sampling_params`` (vLLM names and defaults: a missing temperature is 1, ``None`` or 0 greedy)."""
        seed = params.get("seed")
        return cls(
            temperature=float(params.get("temperature", 1.0) or 0.0),
            top_p=float(params.get("top_p") or 1.0),
            top_k=int(params.get("top_k") or -1),
            repetition_penalty=float(params.get("repetition_penalty") or 1.0),
            seed=None if seed is None else int(seed),
        )


@dataclass
class Generation:
    """A finished request: the new tokens (cut right after the first stop token) and their log-probs."""

    token_ids: list[int]
    log_probs: list[float]
    stopped: bool  # True: ended on a stop token; False: ran to max_new_tokens


@dataclass
class _Request:
    prompt_ids: list[int]
    max_new_tokens: int
    stop_ids: frozenset[int]
    sampling: Sampling
    future: asyncio.Future
    generator: torch.Generator | None = None
    token_ids: list[int] = field(default_factory=list)
    log_probs: list[float] = field(default_factory=list)

    def done(self) -> bool:
        return bool(self.token_ids) and (self.token_ids[-1] in self.stop_ids or len(self.token_ids) >= self.max_new_tokens)


class _PaddedLayer(DynamicLayer):
    """One layer's keys/values of the running rows, ``[rows, heads, capacity, dim]``, left-padded; ``update``
    writes the new step in place (a ``DynamicLayer`` would copy the whole cache every step)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int):
        super().__init__()
        self.dtype, self.device, self.is_initialized = keys.dtype, keys.device, True
        self._k, self._v, self.n = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        end = self.n + key_states.shape[2]
        if end > self._k.shape[2]:
            cap = max(end, self._k.shape[2] + self._k.shape[2] // 2 + 16)
            self._k, self._v = _grow(self._k, self.n, cap), _grow(self._v, self.n, cap)
        self._k[:, :, self.n : end] = key_states
        self._v[:, :, self.n : end] = value_states
        self.n = end
        self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
        return self.keys, self.values

    def get_seq_length(self) -> int:
        return self.n


def _grow(buf: torch.Tensor, used: int, capacity: int) -> torch.Tensor:
    out = buf.new_zeros(buf.shape[0], buf.shape[1], capacity, buf.shape[3])
    out[:, :, :used] = buf[:, :, :used]
    return out


class _Batch:
    """The running rows: their requests, left-pad widths and per-layer KV buffers (``n`` columns in use)."""

    def __init__(self) -> None:
        self.reqs: list[_Request] = []
        self.pads: list[int] = []
        self.layers: list[_PaddedLayer] = []
        self.n = 0

    def add(self, joining: list[tuple[_Request, list[tuple[torch.Tensor, torch.Tensor]]]], headroom: int) -> None:
        """Append prefilled rows (each with its per-layer ``[1, heads, L, dim]`` KV), re-padding all rows to the
        longest, in one reallocation of the buffers."""
        if not joining:
            return
        lengths = [kv[0][0].shape[2] for _, kv in joining]
        width = max([self.n, *lengths])
        cap = width + headroom
        rows = len(self.reqs) + len(joining)
        new_layers = []
        for i in range(len(joining[0][1])):
            k0 = joining[0][1][i][0]
            nk = k0.new_zeros(rows, k0.shape[1], cap, k0.shape[3])
            nv = k0.new_zeros(rows, k0.shape[1], cap, k0.shape[3])
            if self.reqs:
                old = self.layers[i]
                nk[: len(self.reqs), :, width - self.n : width] = old._k[:, :, : self.n]
                nv[: len(self.reqs), :, width - self.n : width] = old._v[:, :, : self.n]
            for j, ((_, kv), length) in enumerate(zip(joining, lengths)):
                row = len(self.reqs) + j
                nk[row : row + 1, :, width - length : width] = kv[i][0]
                nv[row : row + 1, :, width - length : width] = kv[i][1]
            new_layers.append(_PaddedLayer(nk, nv, width))
        self.pads = [p + width - self.n for p in self.pads] + [width - length for length in lengths]
        self.reqs += [req for req, _ in joining]
        self.layers, self.n = new_layers, width

    def keep(self, keep: list[int]) -> None:
        """Keep only the rows ``keep``; drop the pad columns every kept row shares."""
        if not keep:
            self.reqs, self.pads, self.layers, self.n = [], [], [], 0
            return
        cut = min(self.pads[j] for j in keep)
        index = torch.tensor(keep, device=self.layers[0]._k.device)
        self.layers = [
            _PaddedLayer(l._k.index_select(0, index)[:, :, cut:].contiguous(), l._v.index_select(0, index)[:, :, cut:].contiguous(), self.n - cut)
            for l in self.layers
        ]
        self.reqs = [self.reqs[j] for j in keep]
        self.pads = [self.pads[j] - cut for j in keep]
        self.n -= cut

    def cache(self) -> Cache:
        return Cache(layers=list(self.layers))


class BatchGenerator:
    """Serves concurrent ``generate`` calls on one causal LM by decoding them together (see module docstring).

    ``max_num_seqs`` bounds the rows decoded together; ``max_batch_tokens`` bounds the padded KV cache
    (rows x longest row, in tokens) a new row may grow the batch to (a lone request is always admitted). Use
    :meth:`exclusive` around anything else that touches the model (a weight update, a scoring forward): it waits
    for the current step and holds the next one. Rows in flight keep the KV cache they computed before.
    """

    def __init__(self, model: Any, *, max_num_seqs: int = DEFAULT_MAX_NUM_SEQS, max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS,
                 prefix_cache_tokens: int = DEFAULT_PREFIX_CACHE_TOKENS):
        if max_num_seqs < 1 or max_batch_tokens < 1 or prefix_cache_tokens < 0:
            raise ValueError(f"max_num_seqs and max_batch_tokens must be >= 1 and prefix_cache_tokens >= 0, got "
                             f"{max_num_seqs}, {max_batch_tokens}, {prefix_cache_tokens}")
        self.model = model
        use_grouped_decode(model)
        self.max_num_seqs = max_num_seqs
        self.max_batch_tokens = max_batch_tokens
        self._model_lock = threading.Lock()
        self._waiting: deque[_Request] = deque()
        self._batch = _Batch()
        self._task: asyncio.Task | None = None
        self.prefix_cache = PrefixCache(prefix_cache_tokens) if prefix_cache_tokens else None
        self.stats: dict[str, float] = {"steps": 0, "prefills": 0, "max_rows": 0, "cancelled": 0, "prefill_s": 0.0, "decode_s": 0.0,
                                        "prompt_tokens": 0, "reused_tokens": 0}

    @contextlib.contextmanager
    def exclusive(self, changes_weights: bool = False) -> Iterator[Any]:
        """Hold the model between decode steps (weight updates, scoring forwards); yields the model.
        ``changes_weights`` also empties the prefix cache (its KV belongs to the old weights)."""
        with self._model_lock:
            try:
                yield self.model
            finally:
                if changes_weights and self.prefix_cache is not None:
                    self.prefix_cache.clear()

    async def generate(self, prompt_ids: list[int], *, max_new_tokens: int, stop_ids: list[int] | frozenset[int], sampling: Sampling) -> Generation:
        """Generate up to ``max_new_tokens`` (>= 1) after ``prompt_ids``; cancelling the awaiting task frees the row
        at the next step."""
        if not prompt_ids:
            raise ValueError("empty prompt")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        loop = asyncio.get_running_loop()
        gen = None
        if sampling.seed is not None:
            gen = torch.Generator(device=self.model.device).manual_seed(sampling.seed)
        req = _Request(list(prompt_ids), int(max_new_tokens), frozenset(int(t) for t in stop_ids), sampling, loop.create_future(), gen)
        self._waiting.append(req)
        self._ensure_running(loop)
        return await req.future

    # ------------------------------------------------------------------------------------------ the loop

    def _ensure_running(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is not None and not self._task.done() and self._task.get_loop() is loop:
            return
        # First call, or the loop of an earlier ``asyncio.run`` is gone:
        self._batch = _Batch()  # rows of a dead loop can never be answered
        self._waiting = deque(r for r in self._waiting if r.future.get_loop() is loop)
        self._task = loop.create_task(self._run())

    async def _run(self) -> None:
        while self._waiting or self._batch.reqs:
            admit = self._admit()
            cancelled = [i for i, r in enumerate(self._batch.reqs) if r.future.done()]
            try:
                finished = await asyncio.to_thread(self._step, admit, cancelled)
            except BaseException as e:  # noqa: BLE001 - every waiting caller gets the error, the engine resets
                failed = self._batch.reqs + admit
                self._batch = _Batch()
                for r in failed:
                    if not r.future.done():
                        if isinstance(e, asyncio.CancelledError):
                            r.future.cancel()
                        else:
                            r.future.set_exception(e)
                if isinstance(e, asyncio.CancelledError):
                    raise
                logger.exception("batched generation step failed")
                continue
            for r in finished:
                if not r.future.done():
                    r.future.set_result(Generation(r.token_ids, r.log_probs, r.token_ids[-1] in r.stop_ids))

    def _admit(self) -> list[_Request]:
        """Waiting requests that join at the next step (FIFO, within max_num_seqs and max_batch_tokens)."""
        admit: list[_Request] = []
        rows = sum(1 for r in self._batch.reqs if not r.future.done())
        width = self._batch.n
        while self._waiting and rows < self.max_num_seqs:
            req = self._waiting[0]
            if req.future.done():  # cancelled while waiting
                self._waiting.popleft()
                self.stats["cancelled"] += 1
                continue
            grown = max(width, len(req.prompt_ids))
            if rows and (rows + 1) * grown > self.max_batch_tokens:
                break
            admit.append(self._waiting.popleft())
            rows, width = rows + 1, grown
        return admit

    @torch.no_grad()
    def _step(self, admit: list[_Request], cancelled: list[int]) -> list[_Request]:
        """In a worker thread: drop the cancelled rows, prefill the admitted requests, one decode step of all rows,
        then take the rows that are done out of the batch (their KV into the prefix cache). Returns the finished
        requests, those done at their first token included (they never join)."""
        with self._model_lock:
            batch = self._batch
            if cancelled:
                self.stats["cancelled"] += len(cancelled)
                self._leave(batch, cancelled)
            finished, joining = [], []
            start = time.perf_counter()
            for req in admit:
                kv = self._prefill(req)
                if req.done():
                    finished.append(req)
                else:
                    joining.append((req, kv))
            # room for the longest remaining reply, so decode steps rarely regrow the buffers
            headroom = max([r.max_new_tokens - len(r.token_ids) for r in batch.reqs + [j for j, _ in joining]], default=0)
            batch.add(joining, headroom)
            self.stats["prefill_s"] += time.perf_counter() - start
            if batch.reqs:
                start = time.perf_counter()
                self.stats["max_rows"] = max(self.stats["max_rows"], len(batch.reqs))
                self._decode(batch)
                self.stats["decode_s"] += time.perf_counter() - start
                done = [i for i, r in enumerate(batch.reqs) if r.done()]
                finished += [batch.reqs[i] for i in done]
                if done:
                    if self.prefix_cache is not None:
                        for i in done:
                            self._remember(batch, i)
                    self._leave(batch, done)
            return finished

    @staticmethod
    def _leave(batch: _Batch, rows: list[int]) -> None:
        gone = set(rows)
        batch.keep([i for i in range(len(batch.reqs)) if i not in gone])

    def _prefill(self, req: _Request) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Run the prompt (past a stored prefix, when the prefix cache has one) and sample the first token."""
        device = self.model.device
        cache = DynamicCache(config=self.model.config)
        reused, kv = self.prefix_cache.lookup(req.prompt_ids) if self.prefix_cache is not None else (0, None)
        if kv is not None:
            for i, (k, v) in enumerate(kv):
                cache.update(k[:, :, :reused], v[:, :, :reused], i)
        ids = torch.tensor([req.prompt_ids[reused:]], dtype=torch.long, device=device)
        positions = torch.arange(reused, len(req.prompt_ids), device=device)[None, :]
        mask = torch.ones(1, len(req.prompt_ids), dtype=torch.long, device=device)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True, logits_to_keep=1)
        self.stats["prefills"] += 1
        self.stats["prompt_tokens"] += len(req.prompt_ids)
        self.stats["reused_tokens"] += reused
        self._sample([req], out.logits[:, -1, :].float())
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        if self.prefix_cache is not None:
            self.prefix_cache.store(req.prompt_ids, kv)
        return kv

    def _remember(self, batch: _Batch, i: int) -> None:
        """Store a finished row's KV (prompt and reply but its last token, which never ran) in the prefix cache."""
        req = batch.reqs[i]
        pad = batch.pads[i]
        kv = [(layer._k[i : i + 1, :, pad : batch.n].clone(), layer._v[i : i + 1, :, pad : batch.n].clone()) for layer in batch.layers]
        self.prefix_cache.store(req.prompt_ids + req.token_ids[:-1], kv)

    def _decode(self, batch: _Batch) -> None:
        device = self.model.device
        ids = torch.tensor([r.token_ids[-1] for r in batch.reqs], dtype=torch.long, device=device)[:, None]
        mask = torch.ones(len(batch.reqs), batch.n + 1, dtype=torch.long, device=device)
        for i, pad in enumerate(batch.pads):
            mask[i, :pad] = 0
        positions = torch.tensor([batch.n - pad for pad in batch.pads], dtype=torch.long, device=device)[:, None]
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=batch.cache(), use_cache=True)
        batch.n += 1
        self.stats["steps"] += 1
        self._sample(batch.reqs, out.logits[:, -1, :].float())

    @staticmethod
    def _sample(reqs: list[_Request], logits: torch.Tensor) -> None:
        """Pick each row's next token and record its log-prob under ``log_softmax(logits / T)``."""
        temps = torch.tensor([r.sampling.temperature if r.sampling.temperature > 0 else 1.0 for r in reqs], dtype=logits.dtype, device=logits.device)
        scaled = logits / temps[:, None]
        logp = torch.log_softmax(scaled, dim=-1)
        for i, r in enumerate(reqs):
            s = r.sampling
            row = logits[i] if s.repetition_penalty == 1.0 else _penalise(logits[i], r.prompt_ids + r.token_ids, s.repetition_penalty)
            if s.temperature <= 0:
                tok = int(torch.argmax(row))
            else:
                probs = torch.softmax(_filter(row / s.temperature, s.top_k, s.top_p), dim=-1)
                tok = int(torch.multinomial(probs, 1, generator=r.generator))
            r.token_ids.append(tok)
            r.log_probs.append(float(logp[i, tok]))


@torch.no_grad()
def reply_log_probs(model: Any, prompt_ids: list[int], reply_ids: list[int], temperature: float = 1.0) -> torch.Tensor:
    """Log-probs of ``reply_ids`` after ``prompt_ids`` under ``log_softmax(logits / T)`` (float32 logits), from one
    forward pass: what the engine reports while sampling, and what verl's actor recomputes."""
    logits = model(torch.tensor([prompt_ids + reply_ids])).logits[0, len(prompt_ids) - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, torch.tensor(reply_ids)[:, None])[:, 0]


def _penalise(scores: torch.Tensor, seen: list[int], penalty: float) -> torch.Tensor:
    """transformers' repetition penalty: seen tokens' logits divided by ``penalty`` (multiplied when negative)."""
    ids = torch.tensor(sorted(set(seen)), dtype=torch.long, device=scores.device)
    picked = scores[ids]
    return scores.index_copy(0, ids, torch.where(picked < 0, picked * penalty, picked / penalty))


def _filter(scores: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Top-k then top-p (nucleus) filtering of one row of scaled logits, as transformers' warpers do."""
    if 0 < top_k < scores.shape[-1]:
        kth = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=False)
        cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
        remove = cum <= (1 - top_p)
        remove[-1] = False
        scores = scores.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    return scores
