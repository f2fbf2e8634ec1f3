"""ToyWorld's synthesis teachers and the SFT flavours they write, played through the real agent loop.

Two teachers of equal competence act like a careful newcomer who reads the (possibly wrong) documentation and learns
from the environment; they differ in where the first, documented call runs:

* :class:`ProbeTeacher` (flavour ``trial``, trial_mode on): ``<trial>`` turns probe the task's tools in order, each
  called as its schema documents it, on the loop's scratch fork, until the tool that computes what is asked (one
  call per turn: verl's multi-turn SFT dataset tokenizes consecutive tool messages one by one); the probe's result
  tells apart "the docs are right" from what the tool really does (an error's usage line, a deposit that applied a
  different amount, a transfer that went the wrong way). ``<execute>`` then makes the right call on the real
  environment, ``<answer>`` gives the result. In a fixed share of the tasks from level 2 on
  (:data:`RECOVERY_SHARE`, chosen by a hash of the task id) it does not probe the task's tool: it executes it as
  documented and recovers in execution exactly as the self-correcting teacher does (ToolMaster's self-correction
  during execution).
* :class:`SelfCorrectTeacher` (flavour ``selfcorrect``, trial_mode off: no trials): the documented calls run on the
  real environment; what went wrong is repaired from what the environment returned: a failed call is corrected
  from the error's usage line (levels 2-3), a deposit that applied the default amount is topped up with the
  difference (level 4), a transfer that went the wrong way is undone by the corrected transfer and then made
  (level 5). Its turns are written like the direct flavour's (bare tool calls, no phase tag), so at level 1 a
  self-correcting trajectory is exactly the direct one.

Each teacher lists the planned outcome of every call (``expected``), checked against what the environment really
returned by :func:`verl_toolmaster.synth.quality.check`, which also scores the answer (and, at levels 4-5, the final
balances) with the ``toyworld`` scorer.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, TextIO

from ..envs.toyworld import execute, parse_accounts, parse_impl
from ..protocol.render import tool_call_text, turn_text
from ..synth.driver import LoopSettings, Reply, compose_trainer_config, load_tokenizer, run_episode
from ..synth.quality import Rejected, Requirements, check, sft_row
from ..synth.runner import DROPPED, KEPT, Outcome, WorkItem, run_items, trajectory_stats

FLAVOURS = ("trial", "selfcorrect")  # the flavours played by a teacher (direct rows are written without one)
TRIAL_MODE = {"trial": "on", "selfcorrect": "off"}
RECOVERY_SHARE = 0.25  # trial trajectories (level >= 2) that execute the task's tool unprobed and recover in execution


def recovers(task_id: str, level: int) -> bool:
    """Whether the trial teacher skips probing the task's tool (and recovers in execution) on this task."""
    if level < 2:
        return False
    return hashlib.sha256(f"toyworld-recovery:{task_id}".encode()).digest()[0] < 256 * RECOVERY_SHARE


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
        self.task_id = str(info["task_id"])
        self.tools = [t["function"]["name"] for t in self.spec["tools"]]
        self.target = self.tools.index(self.call["name"])
        self._impl = {n: parse_impl(n, raw, self.task_id) for n, raw in self.spec["impl"].items()}
        self._real = parse_accounts(self.spec.get("accounts"), self.task_id)  # the balances as the teacher's calls leave them

    def documented(self, name: str) -> dict[str, Any]:
        """A call of tool ``name`` with the question's values in the order, and under the names, its schema documents."""
        schema = next(t for t in self.spec["tools"] if t["function"]["name"] == name)
        shown = list(schema["function"]["parameters"]["required"])  # documented names in documented order
        return {"name": name, "arguments": dict(zip(shown, self.call["arguments"].values()))}

    def repair(self, first: dict[str, Any]) -> list[dict[str, Any]]:
        """The calls that repair the task after ``first`` (the target's documented call) ran on the real
        environment: none when it did what was asked; the corrected call after an error (levels 2-3); a deposit of
        the difference after a deposit of the default (level 4); the corrected transfer twice, to undo the wrong-way
        one and then make it (level 5)."""
        if first == self.call:
            return []
        impl = self._impl[self.call["name"]]
        if impl.op == "deposit":
            acct, amount = list(self.call["arguments"].items())
            applied = impl.defaults.get(amount[0], 0)
            return [{"name": self.call["name"], "arguments": {acct[0]: acct[1], amount[0]: amount[1] - applied}}]
        if impl.op == "transfer":
            return [self.call, self.call]
        return [self.call]

    def plan(self, phase: str, call: dict[str, Any]) -> dict[str, Any]:
        """Record the outcome ``call`` will have (its real result, on a copy of the balances for a trial)."""
        accounts = self._real if phase == "execute" else dict(self._real)
        ok = execute(self._impl[call["name"]], dict(call["arguments"]), accounts).ok
        self.expected.append({"phase": phase, "turn": 0, "name": call["name"], "ok": ok})
        return call

    def next_step(self) -> int:
        step, self._step = self._step, self._step + 1
        return step

    def after_answer(self) -> RuntimeError:
        return RuntimeError(f"{self.task_id}: the loop asked for a turn after the answer")


_EXECUTE_NOTE = {"deposit": "The probe applied another amount; use the names it applied.",
                 "transfer": "The probe moved it the wrong way; swap the accounts."}


class ProbeTeacher(_Newcomer):
    """Trial flavour: probe the tools until the task's, execute the right call, answer; in a share of tasks execute
    unprobed and recover (module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.recovery = recovers(self.task_id, self.level)
        self.probes = [self.documented(n) for n in self.tools[: self.target + (0 if self.recovery else 1)]]
        if self.recovery:
            first = self.documented(self.call["name"])
            self.executes = [first, *self.repair(first)]
        else:
            self.executes = [self.call]

    async def reply(self, request: Any) -> Reply:
        step = self.next_step()
        n = len(self.probes)
        if step < n:
            return Reply(turn_text("trial", "Probe the tool as documented.", [self.plan("trial", self.probes[step])]))
        k = step - n
        if k < len(self.executes):
            call = self.plan("execute", self.executes[k])
            op = self._impl[call["name"]].op
            if self.recovery:
                note = "Run it as documented." if k == 0 else "Fix it from the result."
            elif op in _EXECUTE_NOTE:
                note = _EXECUTE_NOTE[op]
            elif self.expected[n - 1]["ok"]:  # the probe of the task's tool
                note = "The probe worked; run it."
            else:
                note = "Fix the call with the usage from the error."
            return Reply(turn_text("execute", note, [call]))
        if k == len(self.executes):
            return Reply(turn_text("answer", self.answer))
        raise self.after_answer()


class SelfCorrectTeacher(_Newcomer):
    """Self-correcting flavour: execute as documented, repair from what the environment returned, answer; no trials
    (module docstring)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.calls = [self.documented(name) for name in self.tools[: self.target + 1]]  # up to the tool that answers
        self.calls += self.repair(self.calls[-1])

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
    """The quality checks of a flavour: the planned call outcomes always; for ``trial`` a trial unless the task is
    one the teacher executes unprobed, and at levels 2-3 a failed probe of the task's tool when it probed it; no
    trial for ``selfcorrect`` (trial_mode off never records one)."""
    if flavour == "trial":
        probed = bool(getattr(teacher, "probes", ()))
        failed = teacher.level in (2, 3) and not getattr(teacher, "recovery", False)
        return Requirements(trial=probed, failed_probe=failed, expected_calls=teacher.expected)
    return Requirements(trial=False, expected_calls=teacher.expected)


async def synthesize(flavour: str, rows: list[dict[str, Any]], concurrency: int, progress: bool, err: TextIO) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """SFT rows of ``flavour``: every RL row played by its teacher through the real agent loop (its trial mode) and
    kept only when the synthesis quality checks pass (answer scored correct by the ``toyworld`` scorer, the planned
    call outcomes, protocol round trip; ``selfcorrect`` at levels 2-3: a recovery after the failed call; at levels 4-5
    the scorer's final-balance check). Returns
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
            if flavour == "selfcorrect" and teacher.level in (2, 3) and result.record["counts"]["self_corrections"] < 1:
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
