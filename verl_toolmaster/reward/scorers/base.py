"""Scorer interface: one scorer per data source, shared by the reward manager, synthesis and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass
class Episode:
    """What a scorer sees of one finished trajectory."""

    answers: list[str | None]  # text inside <answer>...</answer> per user turn; None where the turn gave none
    # Call log in order. Each entry: {"phase": "trial"|"execute", "turn": user-turn index, "name": str,
    # "arguments": dict | str (str when it was not valid JSON), "ok": bool, "error_kind": str | None,
    # "text": observation text as shown to the model, "latency_s": float}
    calls: list[dict[str, Any]] = field(default_factory=list)
    response_text: str = ""  # the raw response decoded with special tokens kept (diagnostics only)

    def execute_calls(self, turn: int | None = None) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["phase"] == "execute" and (turn is None or c["turn"] == turn)]

    @property
    def final_answer(self) -> str | None:
        return self.answers[-1] if self.answers else None


@dataclass
class ScoreResult:
    answer: float  # task success in [0, 1]
    reason: str  # short machine-readable reason: "correct", "wrong_answer", "no_answer", "scorer_error", ...
    details: dict[str, float] = field(default_factory=dict)  # numeric diagnostics, logged as metrics


class Scorer:
    """Base class. Subclasses implement :meth:`score`; they must not raise on any model output."""

    sources: tuple[str, ...] = ()

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        raise NotImplementedError


SCORER_REGISTRY: dict[str, type[Scorer]] = {}


def register_scorer(*sources: str) -> Callable[[type[Scorer]], type[Scorer]]:
    def deco(cls: type[Scorer]) -> type[Scorer]:
        for s in sources:
            prev = SCORER_REGISTRY.get(s)
            if prev is not None and prev.__qualname__ != cls.__qualname__:
                raise ValueError(f"data source {s!r} already has scorer {prev.__qualname__}")
            SCORER_REGISTRY[s] = cls
        cls.sources = tuple(sources)
        return cls

    return deco
