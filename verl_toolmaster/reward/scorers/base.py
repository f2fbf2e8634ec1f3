"""Scorer interface: one scorer per data source, shared by the reward manager, synthesis and evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar


@dataclass
class Episode:
    """What a scorer sees of one finished trajectory."""

    answers: list[str | None]  # text inside <answer>...</answer> per user turn; None where the turn gave none
    # Call log in order. Each entry: {"phase": "trial"|"execute", "turn": user-turn index, "name": str,
    # "arguments": dict | str (str when it was not valid JSON), "ok": bool, "error_kind": str | None,
    # "text": observation text as shown to the model, "latency_s": float}
    calls: list[dict[str, Any]] = field(default_factory=list)
    response_text: str = ""  # the raw response decoded with special tokens kept (diagnostics only)
    env_spec: dict[str, Any] | None = None  # the task's environment spec (extra_info["env"]) when known

    def execute_calls(self, turn: int | None = None) -> list[dict[str, Any]]:
        return [c for c in self.calls if c["phase"] == "execute" and (turn is None or c["turn"] == turn)]

    def actions(self) -> list[dict[str, Any]]:
        """Execute-phase calls the environment accepted (``ok``) with JSON-object arguments.

        A call the environment rejected changed nothing, so call-matching scorers do not count it as an
        action (it still shows up in the cost and the diagnostics); trials never count.
        """
        return [c for c in self.calls if c["phase"] == "execute" and c["ok"] and isinstance(c["arguments"], dict)]

    @property
    def final_answer(self) -> str | None:
        return self.answers[-1] if self.answers else None


@dataclass
class ScoreResult:
    answer: float  # task success in [0, 1]
    reason: str  # short machine-readable reason: "correct", "wrong_answer", "no_answer", "scorer_error", ...
    details: dict[str, float] = field(default_factory=dict)  # numeric diagnostics, logged as metrics


class Scorer:
    """Base class. Subclasses implement :meth:`score`; they must not raise on any model output.

    They may raise on a malformed ground truth (a data bug): the reward manager turns that into the reason
    ``scorer_error`` and logs it with the sample index.
    """

    sources: tuple[str, ...] = ()
    # Every key a subclass may put in ScoreResult.details. The reward manager reports all of them for every
    # sample (None where the sample's scorer does not produce the key), because verl needs one key set per batch.
    detail_keys: ClassVar[tuple[str, ...]] = ()
    # True when score() is slow enough (tool re-execution) that the reward manager runs it off the event loop, in
    # a killable child process (``score_in_child``) bounded by ``reward_kwargs.scoring_timeout_s``; the class must
    # then be constructible without arguments.
    cpu_heavy: ClassVar[bool] = False
    # True when score() reads Episode.env_spec (the reward manager parses extra_info["env"] only then).
    needs_env_spec: ClassVar[bool] = False

    def score(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        raise NotImplementedError

    async def ascore(self, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
        """Asynchronous form used by the reward manager; scorers that wait on the network override it."""
        return self.score(ground_truth, episode)


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


_CHILD_SCORERS: dict[str, Scorer] = {}


def score_in_child(cls_path: str, ground_truth: dict[str, Any], episode: Episode) -> ScoreResult:
    """``cls().score(...)`` for a cpu_heavy scorer, in a child of :mod:`verl_toolmaster.envs.trusted_pool`."""
    scorer = _CHILD_SCORERS.get(cls_path)
    if scorer is None:
        import importlib

        module, _, name = cls_path.partition(":")
        scorer = _CHILD_SCORERS[cls_path] = getattr(importlib.import_module(module), name)()
    return scorer.score(ground_truth, episode)
