"""ToyWorld's synthesis teachers and the SFT flavours they write, played through the real agent loop.

Two teachers act like a careful newcomer who reads the (possibly stale) documentation and learns from the
environment; they differ only in where the first, documented call runs:

* :class:`ProbeTeacher` (flavour ``trial``, trial_mode on): one ``<trial>`` per tool of the task calls it as its
  schema documents it (on the loop's scratch fork); ``<execute>`` makes the gold call, which at level >= 2 corrects
  the documented names with the usage line of the probe's error; ``<answer>`` gives the result.
* :class:`SelfCorrectTeacher` (flavour ``selfcorrect``, trial_mode off: no trials): the documented call runs on the
  real environment as an execution; when it fails, the next call is the correction the error teaches; then the
  answer. At level 3 it calls the task's tools in order until the one that computes what is asked, each as
  documented. Its turns are written like the direct flavour's (bare tool calls, no phase tag), so at level 1 a
  self-correcting trajectory is exactly the direct one.

Each teacher lists the planned outcome of every call (``expected``), checked against what the environment really
returned by :func:`verl_toolmaster.synth.quality.check`, which also scores the answer with the ``toyworld`` scorer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..protocol.render import tool_call_text, turn_text
from ..synth.driver import LoopSettings, Reply, compose_trainer_config, load_tokenizer, run_episode
from ..synth.quality import Rejected, Requirements, check, sft_row
from ..synth.runner import DROPPED, KEPT, Outcome, WorkItem, run_items, trajectory_stats

FLAVOURS = ("trial", "selfcorrect")  # the flavours played by a teacher (direct rows are written without one)
TRIAL_MODE = {"trial": "on", "selfcorrect": "off"}


@dataclass
class _Newcomer:
    """What both teachers know of a row: its tools, the gold call and answer, the level."""

    row: dict[str, Any]  # the RL row
    expected: list[dict[str, Any]] = field(default_factory=list)  # planned (phase, turn, name, ok) of every call
    _step: int = 0

    def __post_init__(self) -> None:
        info = self.row["extra_info"]
        self.spec = json.loads(info["env"])
        self.call = json.loads(info["gold"])[0][0][0]
        self.answer = json.loads(info["gold_answers"])[0]
        self.level = int(json.loads(info["tags"])["level"])
        self.tools = [t["function"]["name"] for t in self.spec["tools"]]

    def documented(self, name: str) -> dict[str, Any]:
        """A call of tool ``name`` with the question's values under the names its schema documents."""
        schema = next(t for t in self.spec["tools"] if t["function"]["name"] == name)
        shown = list(schema["function"]["parameters"]["required"])  # documented names in parameter order
        return {"name": name, "arguments": dict(zip(shown, self.call["arguments"].values()))}

    def accepts(self, call: dict[str, Any]) -> bool:
        """Whether the tool accepts ``call`` (a distractor with a matching signature and real names does)."""
        impl = self.spec["impl"][call["name"]]
        if list(call["arguments"]) != [p for p, _ in impl["params"]]:
            return False
        return not (impl["op"] == "lookup" and list(call["arguments"].values())[0] not in impl["table"])

    def plan(self, phase: str, call: dict[str, Any]) -> dict[str, Any]:
        ok = call == self.call or self.accepts(call)
        self.expected.append({"phase": phase, "turn": 0, "name": call["name"], "ok": ok})
        return call

    def next_step(self) -> int:
        step, self._step = self._step, self._step + 1
        return step

    def after_answer(self) -> RuntimeError:
        return RuntimeError(f"{self.row['extra_info']['task_id']}: the loop asked for a turn after the answer")


class ProbeTeacher(_Newcomer):
    """Trial flavour: probe every tool as documented, execute the gold call, answer (module docstring)."""

    async def reply(self, request: Any) -> Reply:
        step = self.next_step()
        n = len(self.tools)
        if step < n:
            # one probe per trial turn: verl's multi-turn SFT dataset tokenizes consecutive tool messages one by one,
            # which does not reproduce the chat template's grouping of parallel results
            probe = self.plan("trial", self.documented(self.tools[step]))
            return Reply(turn_text("trial", "Probe the tool as documented.", [probe]))
        if step == n:
            probe_ok = next(e["ok"] for e in self.expected if e["phase"] == "trial" and e["name"] == self.call["name"])
            self.plan("execute", self.call)
            note = "The probe worked; run it." if probe_ok else "Fix the call with the usage from the error."
            return Reply(turn_text("execute", note, [self.call]))
        if step == n + 1:
            return Reply(turn_text("answer", self.answer))
        raise self.after_answer()


class SelfCorrectTeacher(_Newcomer):
    """Self-correcting flavour: execute as documented, correct from the error, answer; no trials (module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        target = self.tools.index(self.call["name"])
        self.calls = [self.documented(name) for name in self.tools[: target + 1]]  # up to the tool that answers
        if not self.accepts(self.calls[-1]):
            self.calls.append(self.call)  # the correction the error's usage line teaches

    async def reply(self, request: Any) -> Reply:
        step = self.next_step()
        if step < len(self.calls):
            call = self.plan("execute", self.calls[step])
            return Reply(tool_call_text(call["name"], call["arguments"]))
        if step == len(self.calls):
            return Reply(turn_text("answer", self.answer))
        raise self.after_answer()


TEACHERS = {"trial": ProbeTeacher, "selfcorrect": SelfCorrectTeacher}


def requirements(flavour: str, teacher: _Newcomer) -> Requirements:
    """The quality checks of a flavour: the planned call outcomes always; a trial and, from level 2 on, a failed
    probe for ``trial``; no trial for ``selfcorrect`` (trial_mode off never records one)."""
    stale = teacher.level >= 2
    if flavour == "trial":
        return Requirements(trial=True, failed_probe=stale, expected_calls=teacher.expected)
    return Requirements(trial=False, expected_calls=teacher.expected)


async def synthesize(flavour: str, rows: list[dict[str, Any]], concurrency: int, progress: bool, err: TextIO) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SFT rows of ``flavour``: every RL row played by its teacher through the real agent loop (its trial mode) and
    kept only when the synthesis quality checks pass (answer scored correct by the ``toyworld`` scorer, the planned
    call outcomes, protocol round trip; ``selfcorrect`` from level 2 on: a recovery after the failed call). Returns
    the rows and the drop counts by reason."""
    import verl_toolmaster.reward.scorers.toyworld  # noqa: F401  (registers the toyworld scorer for the quality checks)

    if flavour not in TEACHERS:
        raise ValueError(f"flavour must be one of {FLAVOURS}, got {flavour!r}")
    tokenizer, model_type = load_tokenizer(None)
    overrides = [f"+actor_rollout_ref.rollout.custom.toolmaster.trial_mode={TRIAL_MODE[flavour]}"]
    settings = LoopSettings(compose_trainer_config(None, overrides, 4096, 1024), tokenizer, model_type)

    async def episode(item: WorkItem) -> Outcome:
        teacher = TEACHERS[flavour](item.row)
        result = await run_episode(item.row, teacher, settings)
        try:
            await check(item.row, result, requirements(flavour, teacher))
            if flavour == "selfcorrect" and teacher.level >= 2 and result.record["counts"]["self_corrections"] < 1:
                raise Rejected("no_self_correction", "no successful call after the failed documented call")
        except Rejected as e:
            return Outcome(item.key, DROPPED, e.reason, e.detail)
        return Outcome(item.key, KEPT, sft=sft_row(item.row, result, f"toyworld-{flavour}", 0), stats=trajectory_stats(result.record))

    items = [WorkItem(key=str(r["extra_info"]["task_id"]), order=i, row=r) for i, r in enumerate(rows)]
    outcomes, _ = await run_items(items, episode, concurrency=concurrency, progress=progress, desc=f"toyworld {flavour} sft", err=err)
    dropped: dict[str, int] = {}
    for o in outcomes:
        if o.status != KEPT:
            dropped[o.reason or "unknown"] = dropped.get(o.reason or "unknown", 0) + 1
    return [o.sft for o in outcomes if o.status == KEPT and o.sft is not None], dropped
