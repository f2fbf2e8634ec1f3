"""KV caches of finished sequences, reused by later prompts that start with them (the next turn of a trajectory,
the other samples of a GRPO group), so a prefill only runs over the tokens that are new."""

from __future__ import annotations

from collections import OrderedDict

import torch

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), each [1, heads, tokens, dim]


class PrefixCache:
    """Least-recently-used store of ``(token ids, KV)`` entries holding at most ``max_tokens`` tokens in all.

    An entry that is a prefix of a newly stored sequence is dropped (the longer one serves every prompt the
    shorter one did). :meth:`clear` after the weights change: stored KV belongs to the weights that made it.
    """

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self._entries: OrderedDict[int, tuple[list[int], KV]] = OrderedDict()
        self._next = 0
        self.tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, ids: list[int]) -> tuple[int, KV | None]:
        """The longest stored prefix of ``ids``, capped at ``len(ids) - 1`` (the last prompt token must still run
        through the model for its logits): ``(matched tokens, the entry's KV)``, or ``(0, None)``."""
        best, best_key = 0, None
        for key, (stored, _) in self._entries.items():
            limit = min(len(stored), len(ids) - 1)
            n = 0
            while n < limit and stored[n] == ids[n]:
                n += 1
            if n > best:
                best, best_key = n, key
        if best_key is None:
            return 0, None
        self._entries.move_to_end(best_key)
        return best, self._entries[best_key][1]

    def store(self, ids: list[int], kv: KV) -> None:
        """Keep ``kv`` (covering exactly ``ids``) unless it alone exceeds the budget; evict the oldest beyond it."""
        if not ids or len(ids) > self.max_tokens:
            return
        for key, (stored, _) in list(self._entries.items()):
            if len(stored) <= len(ids) and ids[: len(stored)] == stored:
                self._drop(key)
        self._entries[self._next] = (list(ids), kv)
        self._next += 1
        self.tokens += len(ids)
        while self.tokens > self.max_tokens:
            self._drop(next(iter(self._entries)))

    def clear(self) -> None:
        self._entries.clear()
        self.tokens = 0

    def _drop(self, key: int) -> None:
        stored, _ = self._entries.pop(key)
        self.tokens -= len(stored)
