"""The scripted teacher: trial -> execute -> answer trajectories built from a task's gold trace, offline.

For every user turn with gold calls the teacher plans, against the task's REAL environment:

* a failed probe - the first gold call with a realistic mistake (:mod:`.probes`) that the environment rejects on a
  scratch fork (tried in a seeded order until one fails); mandatory in the first user turn with calls, random later;
* its correction - either a second trial with the right call, or the first execute turn;
* the gold steps as execute turns (sometimes with one rejected execute call and its retry, when a rejected call
  cannot change the environment's state), and the answer: the gold answer text when the benchmark has one, else a
  summary of the calls made and the observation returned.

The teacher only writes turns. The agent loop (:mod:`.driver`) runs them: trials on its fork, executions on its
environment, and every observation in the trajectory is the one that environment returned. The teacher keeps a
mirror environment (``oracle``) in the same state to choose mistakes that really fail; :attr:`ScriptedTeacher.expected`
lists the outcome it planned for every call, and the quality checks drop a trajectory whose real outcomes differ.
Deterministic for a given seed, task and variant.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from verl_toolmaster.envs import Observation, ToolEnv, make_env
from verl_toolmaster.protocol.render import turn_text
from verl_toolmaster.protocol.tags import ANSWER, EXECUTE, TRIAL

from . import templates as tpl
from .driver import Reply, TurnRequest
from .probes import EXTRA, MISSING, RENAMED, WRONG_TYPE, Probe, probe_candidates

# Error kinds a failed probe may show: the environment checked the call and said what was wrong. (Timeouts, crashes,
# transport errors say nothing about the tool's interface.) Stateful environments only get mistakes rejected before
# the backend ran, so a failed call never leaves half-done state behind.
PROBE_ERROR_KINDS = ("schema", "bad_arguments", "exception")
STATE_SAFE_ERROR_KINDS = ("schema", "bad_arguments")
_ERROR_RESULT = re.compile(r"""^\s*\{\s*["']error["']\s*:""", re.I)
_UNINFORMATIVE = ("", "{}", "[]", "None", "null", "true", "True")  # results not worth quoting in the next turn's reasoning


class Unplannable(Exception):
    """The task cannot yield a scripted trajectory; ``reason`` is the drop reason counted in the report."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class ScriptedOptions:
    """How the scripted teacher varies its trajectories (all draws come from the task's seeded RNG)."""

    seed: int = 0  # base seed; a task's RNG is seeded with (seed, task id, variant)
    fix_in_trial: float = 0.5  # probability that a failed probe is corrected by a second trial (else by the first execute)
    later_probe: float = 0.3  # probability of a failed probe in a later user turn (the first turn with calls always has one)
    later_trial: float = 0.5  # probability that a later user turn without a failed probe starts with a correct trial
    execute_error: float = 0.2  # probability of one rejected execute call and its retry in a user turn (state-safe only)
    max_candidates: int = 8  # wrong variants tried on a fork when looking for a failing probe

    def __post_init__(self) -> None:
        for name in ("fix_in_trial", "later_probe", "later_trial", "execute_error"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"scripted option {name}={getattr(self, name)!r} must be a probability in [0, 1]")
        if self.max_candidates < 1:
            raise ValueError(f"scripted option max_candidates={self.max_candidates!r} must be >= 1")


@dataclass
class _Turn:
    phase: str
    body: Callable[[list[str]], str]  # observations of the previous turn -> reasoning (or answer) text
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"}
    expect_ok: list[bool] = field(default_factory=list)


def gold_of(row: dict[str, Any]) -> list[list[list[dict[str, Any]]]] | None:
    """The RL row's gold trace (per user turn, steps of calls), or None when the benchmark has none."""
    return _json(row["extra_info"].get("gold"))


def precheck(row: dict[str, Any]) -> str | None:
    """Why the scripted teacher cannot use this row (a drop reason), or None."""
    info = row["extra_info"]
    spec = _json(info.get("env")) or {}
    if spec.get("perturb"):
        return "perturbed"  # gold calls use the real names; only the env wrapper knows the renaming
    gold = gold_of(row)
    if gold is None:
        return "no_gold_trace"
    n_turns = 1 + len(_json(info.get("follow_up")) or [])
    if len(gold) > n_turns:
        return "bad_gold_trace"
    if not any(step for turn in gold for step in turn):
        return "no_gold_calls"  # nothing to probe: a trajectory without calls has no trial
    return None


class ScriptedTeacher:
    """A :class:`~.driver.Teacher` that plays one task's gold trace with trials. One instance per trajectory."""

    def __init__(self, row: dict[str, Any], options: ScriptedOptions, loop_config: Any, variant: int = 0):
        reason = precheck(row)
        if reason is not None:
            raise Unplannable(reason)
        info = row["extra_info"]
        self.task_id = str(info.get("task_id", info.get("index")))
        self.source = row.get("data_source")
        self.spec = _json(info["env"])
        self.gold = gold_of(row) or []
        self.gold_answers = _json(info.get("gold_answers")) or []
        self.ground_truth = _json(row["reward_model"]["ground_truth"]) or {}
        self.n_turns = 1 + len(_json(info.get("follow_up")) or [])
        self.first_gold_turn = next(t for t, steps in enumerate(self.gold) if steps)
        self.options = options
        self.cfg = loop_config
        self.rng = random.Random(f"{options.seed}:{self.task_id}:{variant}")
        self.expected: list[dict[str, Any]] = []  # planned outcome of every call, in order: phase, turn, name, ok
        self.probe_kinds: list[str] = []  # kinds of the failed probes used
        self.oracle: ToolEnv | None = None
        self._queue: list[_Turn] = []
        self._turn = 0  # user turn being worked on
        self._turns_used = 0  # assistant turns emitted
        self._known: set[str] = set()  # tools called so far in this episode (later trials target new ones)

    # ------------------------------------------------------------------ Teacher

    async def reply(self, request: TurnRequest) -> Reply:
        if not self._queue:
            if self._turn >= self.n_turns:
                raise Unplannable("loop_continued", "the loop asked for a turn after the last answer")
            await self._plan(self._turn)
        turn = self._queue.pop(0)
        body = turn.body(_last_observations(request.messages))
        for call, ok in zip(turn.calls, turn.expect_ok):
            self._known.add(call["name"])
            self.expected.append({"phase": turn.phase, "turn": self._turn, "name": call["name"], "ok": ok})
        if turn.phase == EXECUTE:
            for call in turn.calls:  # keep the mirror in the state the loop's environment is about to reach
                await self.oracle.call(call["name"], call["arguments"])
        if turn.phase == ANSWER:
            self._turn += 1
        self._turns_used += 1
        return Reply(turn_text(turn.phase, body, turn.calls))

    async def close(self) -> None:
        if self.oracle is not None:
            await self.oracle.close()

    # ------------------------------------------------------------------ planning

    async def _plan(self, t: int) -> None:
        if self.oracle is None:
            self.oracle = make_env(self.spec)
        self.oracle.set_turn(t)
        steps = self.gold[t] if t < len(self.gold) else []
        if not steps:
            self._queue = [_Turn(ANSWER, self._no_call_answer(t))]
            self._check_budget(t)
            return
        rng, opt = self.rng, self.options
        first = steps[0]
        head = first[0]
        self._schema(head["name"])
        obs = await self._on_fork(head["name"], head["arguments"])
        if not obs.ok:
            raise Unplannable("gold_call_rejected", f"turn {t}: {head['name']} -> {obs.error_kind}: {tpl.excerpt(obs.text, 200)}")
        kinds = STATE_SAFE_ERROR_KINDS if self.oracle.stateful else PROBE_ERROR_KINDS
        mandatory = t == self.first_gold_turn

        # Trials target tools this episode has not used yet, on the state the user turn starts from.
        fresh = list({c["name"]: c for step in steps for c in step if c["name"] not in self._known}.values())
        probe: Probe | None = None
        target: dict[str, Any] | None = None
        if mandatory or rng.random() < opt.later_probe:
            clean = []
            for call in fresh:
                if _looks_failed(await self._on_fork(call["name"], call["arguments"])):
                    continue  # an error report (or it needs the state earlier steps create): not shown as the working call
                clean.append(call["name"])
                probe = await self._failing(call["name"], call["arguments"], self._schema(call["name"]), kinds)
                if probe is not None:
                    target = call
                    break
            if probe is None and mandatory:
                if not clean:
                    raise Unplannable(
                        "gold_result_is_error",
                        f"turn {t}: no gold call of {[c['name'] for c in fresh]} returns a clean result at the start of the turn",
                    )
                raise Unplannable("no_failing_probe", f"turn {t}: no wrong variant of {clean} fails in the environment")
        queue: list[_Turn] = []
        fixed_by_execute = False
        if probe is not None and target is not None:
            name, args = target["name"], target["arguments"]
            self.probe_kinds.append(probe.kind)
            queue.append(_Turn(TRIAL, self._probe_text(name, probe), [_call(name, probe.arguments)], [False]))
            fixed_by_execute = target in first and rng.random() >= opt.fix_in_trial
            if not fixed_by_execute:
                queue.append(_Turn(TRIAL, self._retry_text("retry", name, args, probe), [_call(name, args)], [True]))
        elif not mandatory and fresh and rng.random() < opt.later_trial:
            for call in fresh:
                if not _looks_failed(await self._on_fork(call["name"], call["arguments"])):
                    given = tpl.show_call(call["name"], call["arguments"])
                    text = tpl.pick(rng, "probe.ok", tool=call["name"], call=given, given=given)
                    queue.append(_Turn(TRIAL, _const(text), [_call(call["name"], call["arguments"])], [True]))
                    target = call
                    break

        step_calls = [_call(c["name"], c["arguments"]) for c in first]
        bad: Probe | None = None
        if not fixed_by_execute and len(first) == 1 and rng.random() < opt.execute_error:
            bad = await self._failing(head["name"], head["arguments"], self._schema(head["name"]), STATE_SAFE_ERROR_KINDS)
        if bad is not None:
            text = self._first_execute_text(head, target, None)
            queue.append(_Turn(EXECUTE, text, [_call(head["name"], bad.arguments)], [False]))
            queue.append(
                _Turn(EXECUTE, self._retry_text("execute.retry", head["name"], head["arguments"], bad), step_calls, [True] * len(first))
            )
        else:
            text = self._first_execute_text(head, target, probe if fixed_by_execute else None)
            queue.append(_Turn(EXECUTE, text, step_calls, [True] * len(first)))
        for prev, step in zip(steps, steps[1:]):
            queue.append(_Turn(EXECUTE, self._next_text(prev, step), [_call(c["name"], c["arguments"]) for c in step], [True] * len(step)))
        queue.append(_Turn(ANSWER, self._answer(t, steps)))
        self._queue = queue
        self._check_budget(t)

    def _check_budget(self, t: int) -> None:
        cfg = self.cfg
        trials = sum(1 for q in self._queue if q.phase == TRIAL)
        executes = sum(1 for q in self._queue if q.phase == EXECUTE)
        widest = max((len(q.calls) for q in self._queue), default=0)
        if trials > cfg.max_trial_turns:
            raise Unplannable("over_budget", f"turn {t}: {trials} trial turns > max_trial_turns={cfg.max_trial_turns}")
        if executes > cfg.max_execute_turns:
            raise Unplannable("over_budget", f"turn {t}: {executes} execute turns > max_execute_turns={cfg.max_execute_turns}")
        if widest > cfg.max_calls_per_turn:
            raise Unplannable("over_budget", f"turn {t}: {widest} calls in one turn > max_calls_per_turn={cfg.max_calls_per_turn}")
        if self._turns_used + len(self._queue) > cfg.max_turns:
            raise Unplannable("over_budget", f"turn {t}: more than max_turns={cfg.max_turns} assistant turns")

    def _schema(self, name: str) -> dict[str, Any] | None:
        for tool in self.oracle.tools():
            if tool["function"]["name"] == name:
                return tool["function"].get("parameters")
        raise Unplannable("gold_call_unknown_tool", f"gold call to {name!r}, which the environment does not offer at this turn")

    async def _on_fork(self, name: str, arguments: dict[str, Any]) -> Observation:
        fork = self.oracle.fork()
        try:
            return await fork.call(name, arguments)
        finally:
            await fork.close()

    async def _failing(self, name: str, arguments: dict[str, Any], schema: dict[str, Any] | None, kinds: tuple[str, ...]) -> Probe | None:
        """The first wrong variant (seeded order) that the environment rejects with one of ``kinds``."""
        for probe in probe_candidates(arguments, schema, self.rng)[: self.options.max_candidates]:
            obs = await self._on_fork(name, probe.arguments)
            if not obs.ok and obs.error_kind in kinds:
                return probe
        return None

    # ------------------------------------------------------------------ texts

    def _probe_text(self, name: str, probe: Probe) -> Callable[[list[str]], str]:
        shown = ", ".join(f"{k}={tpl.show_value(v)}" for k, v in probe.arguments.items())
        given = f"just {shown}" if shown else "no arguments"
        text = tpl.pick(
            self.rng,
            f"probe.{probe.kind}",
            tool=name,
            given=given,
            param=probe.param,
            wrong=probe.detail.get("wrong", ""),
            label=probe.param.replace("_", " "),
            shown_value=tpl.show_value(probe.arguments.get(probe.param)),
        )
        return _const(text)

    def _fix(self, name: str, probe: Probe) -> str:
        return tpl.pick(
            self.rng,
            f"fix.{probe.kind}",
            tool=name,
            param=probe.param,
            wrong=probe.detail.get("wrong", ""),
            expected_phrase=tpl.type_phrase(probe.detail.get("expected")),
        )

    def _retry_text(self, key: str, name: str, args: dict[str, Any], probe: Probe) -> Callable[[list[str]], str]:
        fix = self._fix(name, probe)
        variant = self.rng.randrange(1 << 30)

        def body(obs: list[str]) -> str:
            error = tpl.excerpt(obs[0]) if obs else "an error"
            return tpl.pick(random.Random(variant), key, tool=name, error=error, fix=fix, call=tpl.show_call(name, args))

        return body

    def _first_execute_text(self, head: dict[str, Any], trialed: dict[str, Any] | None, probe: Probe | None) -> Callable[[list[str]], str]:
        """Text of the first execute turn, whose first call is ``head``; ``trialed`` is the call the trials of this
        user turn were about (None: no trial); with ``probe`` this turn corrects that failed probe of ``trialed``."""
        if probe is not None and trialed is not None:
            return self._retry_text("execute.after_failed_probe", trialed["name"], trialed["arguments"], probe)
        if trialed is None:
            key = "execute.direct"
        else:
            key = "execute.after_trial" if trialed["name"] == head["name"] else "execute.after_other_trial"
        return _const(tpl.pick(self.rng, key, tool=head["name"], call=tpl.show_call(head["name"], head["arguments"])))

    def _next_text(self, prev: list[dict[str, Any]], step: list[dict[str, Any]]) -> Callable[[list[str]], str]:
        variant = self.rng.randrange(1 << 30)
        tools = ", ".join(f"`{c['name']}`" for c in step).strip("`")
        call = "; ".join(tpl.show_call(c["name"], c["arguments"]) for c in step)
        prev_tool = prev[-1]["name"]

        def body(obs: list[str]) -> str:
            seen = tpl.excerpt(obs[-1], 80) if obs else ""
            key = "execute.next_plain" if seen in _UNINFORMATIVE else "execute.next"
            return tpl.pick(random.Random(variant), key, prev_tool=prev_tool, obs=f'"{seen}"', tool=tools, call=call)

        return body

    def _answer(self, t: int, steps: list[list[dict[str, Any]]]) -> Callable[[list[str]], str]:
        gold = self.gold_answers[t] if t < len(self.gold_answers) else None
        if gold is not None:
            text = str(gold).strip()
            return _const(text)
        variant = self.rng.randrange(1 << 30)
        calls = "; ".join(tpl.show_call(c["name"], c["arguments"], 100) for c in steps[-1])

        def body(obs: list[str]) -> str:
            seen = tpl.excerpt(obs[-1], 120) if obs else "no output"
            return tpl.pick(random.Random(variant), "answer.calls", calls=calls, obs=seen or "no output")

        return body

    def _no_call_answer(self, t: int) -> Callable[[list[str]], str]:
        gold = self.gold_answers[t] if t < len(self.gold_answers) else None
        if gold is not None:
            return _const(str(gold).strip())
        category = str(self.ground_truth.get("category", ""))
        if "miss_func" in category:
            return _const(tpl.pick(self.rng, "answer.no_tool"))
        if "miss_param" in category:
            return _const(tpl.pick(self.rng, "answer.missing_info"))
        raise Unplannable("no_gold_reply", f"turn {t} has no gold call and no gold reply")


def _call(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def _looks_failed(obs: Observation) -> bool:
    """A call that failed, or "succeeded" with an error report as its result (BFCL and ToolHop tools return
    ``{"error": ...}`` for bad input): not a call a trial should present as the working one."""
    return not obs.ok or bool(_ERROR_RESULT.match(obs.text))


def _const(text: str) -> Callable[[list[str]], str]:
    return lambda _obs: text


def _last_observations(messages: list[dict[str, Any]]) -> list[str]:
    """Tool messages since the last assistant message (the results of the previous turn's calls)."""
    out: list[str] = []
    for m in reversed(messages):
        if m.get("role") == "assistant":
            break
        if m.get("role") == "tool":
            out.append(str(m.get("content", "")))
    return out[::-1]


def _json(value: Any) -> Any:
    if isinstance(value, str):
        return json.loads(value)
    return value


__all__ = ["EXTRA", "MISSING", "RENAMED", "WRONG_TYPE", "ScriptedOptions", "ScriptedTeacher", "Unplannable", "gold_of", "precheck"]
