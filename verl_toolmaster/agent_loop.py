"""ToolMasterAgentLoop: verl's agent loop for the trial-and-execution protocol (registered as "toolmaster_agent").

One trajectory = one environment built from the row's ``extra_info["env"]`` spec: its tools (different for
every task) are rendered into this sample's prompt and are the only callable ones. ``<trial>`` calls run on
a scratch fork of the environment, ``<execute>`` calls on the real one, ``<answer>`` ends the user turn.
Tokens are only ever appended through verl's Continuous Token builders (``ct_*``): nothing is re-tokenised.
Model mistakes and tool failures become observations plus counted metrics; the environment is closed at the
end of every trajectory. Output contract: docs/protocol.md and the ``toolmaster`` extra field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Sequence
from uuid import uuid4

from . import compat
from .agent_config import ToolMasterLoopConfig, to_plain, load_config
from .protocol.messages import decode_messages
from .envs import Observation, ToolEnv, make_env
from .envs.runtime import apply_runtime
from .protocol import prompts
from .protocol.parse import ParsedTurn, ToolCall, decode_turn, parse_turn
from .protocol.render import message_from_parsed, tool_message
from .protocol.segment import merge_spans
from .protocol.tags import ANSWER, EXECUTE, OBSERVATION, TRIAL
from .registration import AGENT_NAME, EXTRA_KEY

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))

EXTRA_VERSION = 1  # version of the extra_fields[EXTRA_KEY] layout
__all__ = ["AGENT_NAME", "EXTRA_KEY", "ToolMasterAgentLoop", "register_with_verl"]
_PENDING = "_pending"  # span label of a sampled turn until it is parsed
_INLINE_PARSE_TOKENS = 2048  # longer turns are decoded/parsed in a thread so the event loop never stalls


@dataclass
class _Episode:
    """Mutable state of one trajectory."""

    env: ToolEnv
    n_user_turns: int
    follow_up: list[str]
    messages: list[dict[str, Any]]
    prompt_ids: list[int] = field(default_factory=list)
    mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    spans: list[list] = field(default_factory=list)  # [label, start, end] over response positions
    metrics: dict[str, Any] = field(default_factory=dict)  # AgentLoopMetrics timings
    server_extra: dict[str, Any] = field(default_factory=dict)  # verl bookkeeping from the server (global steps)
    # per user turn
    user_turn: int = 0
    trial_turns: int = 0
    execute_turns: int = 0
    executed: bool = False  # an <execute> turn happened in this user turn
    fork: ToolEnv | None = None  # scratch environment of this user turn's trials
    # per episode
    assistant_turns: int = 0
    context_rounds: int = 0
    answers: list[str | None] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)
    counts: dict[str, Any] = field(default_factory=dict)
    termination: str | None = None
    close_errors: list[str] = field(default_factory=list)
    row: Any = None  # extra_info["index"] of the dataset row

    def __post_init__(self) -> None:
        self.answers = [None] * self.n_user_turns
        self.counts = {
            "trial_turns": 0,
            "execute_turns": 0,
            "answer_turns": 0,
            "trial_calls": 0,
            "execute_calls": 0,
            "tool_errors": 0,
            "self_corrections": 0,
            "truncated_outputs": 0,
            "violations": {},
        }

    def violation(self, kind: str) -> None:
        v = self.counts["violations"]
        v[kind] = v.get(kind, 0) + 1

    @property
    def n_violations(self) -> int:
        return sum(self.counts["violations"].values())

    def add_span(self, label: str, n: int) -> None:
        if n <= 0:
            return
        start = self.spans[-1][2] if self.spans else 0
        self.spans.append([label, start, start + n])

    def label_pending(self, label: str) -> None:
        """Give the just-sampled turn (added as "_pending") its phase label."""
        if self.spans and self.spans[-1][0] == _PENDING:
            self.spans[-1][0] = label

    def trim_spans(self, n: int) -> None:
        """Drop the last ``n`` positions (a builder removed prefix tokens at a merge junction)."""
        while n > 0 and self.spans:
            label, start, end = self.spans[-1]
            cut = min(n, end - start)
            self.spans[-1][2] = end - cut
            if self.spans[-1][2] <= start:
                self.spans.pop()
            n -= cut


class ToolMasterAgentLoop(compat.AgentLoopBase):
    """verl agent loop for the trial -> execute -> answer protocol. See the module docstring."""

    def __init__(self, *args: Any, tools: Any = None, toolmaster: Any = None, **kwargs: Any):
        kwargs.pop("name", None)  # the YAML entry's own name, passed through by hydra.utils.instantiate
        super().__init__(*args, **kwargs)
        del tools  # verl's global tool list is not used: every task brings its own tools
        self.cfg: ToolMasterLoopConfig
        self.cfg, self._full_determinism = _cached_config(self.config, self.rollout_config, toolmaster)
        self.response_length: int = int(self.rollout_config.response_length)
        self.prompt_length: int = int(self.rollout_config.prompt_length)
        self._prompt_tokens: int | None = None  # the initial prompt's length before verl capped it
        self._want_logprobs = False  # set per run from sampling_params["logprobs"]

    # ------------------------------------------------------------------ run

    @compat.rollout_trace_op
    async def run(self, sampling_params: dict[str, Any], **kwargs: Any) -> Any:
        extra_info = kwargs.get("extra_info") or {}
        row = extra_info.get("index", "?")
        row = row.item() if hasattr(row, "item") else row  # numpy scalars from parquet
        spec = extra_info.get("env")
        if spec is None:
            raise ValueError(
                f"row {row}: extra_info has no 'env' environment spec; ToolMasterAgentLoop needs one per row "
                "(see verl_toolmaster.data.task.rl_row)"
            )
        follow_up = _json_list(extra_info.get("follow_up"), f"row {row}: extra_info['follow_up']")
        # Building the environment and the first prompt happens under the token gate too: when a worker starts
        # hundreds of trajectories at once, this spreads their start-up instead of running it in one loop tick.
        async with _token_gate(self.loop):
            try:
                env = make_env(spec)
            except ValueError as e:
                raise ValueError(f"row {row}: {e}") from None
            ep = _Episode(env=env, n_user_turns=1 + len(follow_up), follow_up=follow_up, messages=self._messages(kwargs), row=row)
            try:
                ep.prompt_ids = await self.ct_build_initial_tokens(ep.messages, tools=env.tools())
            except BaseException:
                await self._close(ep)
                raise
        try:
            await self._episode(ep, sampling_params, kwargs.get("priority", 0))
        finally:
            await self._close(ep)
        return self._output(ep)

    def _messages(self, kwargs: dict[str, Any]) -> list[dict[str, Any]]:
        # Rows keep history tool-call arguments as JSON strings (parquet would merge their keys); the chat
        # template needs dicts, else Qwen's `tojson` double-encodes them.
        messages = decode_messages(list(kwargs["raw_prompt"]))
        text = self.cfg.system_prompt
        if text is not None:
            text = prompts.system_prompt(self.cfg.trial_mode) if text == "default" else text
            if messages and messages[0].get("role") == "system":
                messages[0]["content"] = text
            else:
                messages.insert(0, {"role": "system", "content": text})
        return messages

    async def _episode(self, ep: _Episode, sampling_params: dict[str, Any], priority: int) -> None:
        cfg = self.cfg
        self._want_logprobs = bool(sampling_params.get("logprobs"))
        request_id = f"det-{priority}" if self._full_determinism else uuid4().hex
        while True:
            if ep.assistant_turns >= cfg.max_turns:
                ep.termination = "turn_budget"
                return
            remaining = self.response_length - len(ep.mask)
            if remaining <= 0:
                ep.termination = "response_budget"
                return
            params = dict(sampling_params)
            params["max_tokens"] = min(remaining, params.get("max_tokens") or remaining)
            with compat.simple_timer("generate_sequences", ep.metrics):
                out = await self.server_manager.generate(request_id=request_id, prompt_ids=ep.prompt_ids, sampling_params=params)
            self._absorb_server_fields(ep, out)
            await self._append_assistant(ep, out)
            turn = await self._parse(ep, out.token_ids)
            ep.label_pending(turn.span_label)
            ep.messages.append(message_from_parsed(turn))
            if len(ep.mask) >= self.response_length:  # the budget ended inside or right after this turn
                self._final_turn(ep, turn)
                return
            context = await self._handle_turn(ep, turn)
            if ep.termination:
                return
            if not await self._append_context(ep, context):
                ep.termination = "response_budget"
                return

    # ------------------------------------------------------------------ tokens

    def _absorb_server_fields(self, ep: _Episode, out: Any) -> None:
        preempted = out.num_preempted if out.num_preempted is not None else 0
        if "num_preempted" not in ep.metrics:
            ep.metrics["num_preempted"] = out.num_preempted if out.num_preempted is not None else -1
        else:
            ep.metrics["num_preempted"] += preempted
        extra = out.extra_fields or {}
        if not ep.server_extra:
            ep.server_extra.update(extra)
        elif extra.get("max_global_steps"):
            ep.server_extra["max_global_steps"] = extra["max_global_steps"]

    async def _append_assistant(self, ep: _Episode, out: Any) -> None:
        if out.log_probs:
            _pad_logprobs(ep)  # turns so far sampled nothing: their context positions get logprob 0
        logprobs = ep.logprobs if (ep.logprobs or out.log_probs) else None
        async with _token_gate(self.loop):
            merge, mask, logprobs = await self.ct_merge_assistant_token(
                ep.prompt_ids, list(out.token_ids), ep.mask, logprobs, assistant_logprobs=out.log_probs or None
            )
        self._track(ep, merge, assistant=True)
        ep.prompt_ids, ep.mask = merge.token_ids, mask
        if logprobs is not None:
            ep.logprobs = logprobs
        ep.assistant_turns += 1

    async def _append_context(self, ep: _Episode, new_messages: list[dict[str, Any]]) -> bool:
        """Append tool/feedback/user messages (mask 0). False when they do not fit the response budget."""
        previous = list(ep.messages)
        ep.messages.extend(new_messages)
        async with _token_gate(self.loop):
            merge, mask, logprobs = await self.ct_merge_context_msg(
                previous, ep.messages, ep.prompt_ids, ep.mask, ep.logprobs or None, tools=ep.env.tools()
            )
        if len(mask) >= self.response_length:
            return False
        self._track(ep, merge, assistant=False)
        ep.prompt_ids, ep.mask = merge.token_ids, mask
        if ep.logprobs:
            ep.logprobs = logprobs or []
        ep.context_rounds += 1
        return True

    @staticmethod
    def _track(ep: _Episode, merge: Any, *, assistant: bool) -> None:
        """Mirror a Continuous Token merge onto the phase spans (same edits as align_response_metadata)."""
        ep.trim_spans(merge.removed_prefix_token_count)
        ep.add_span(OBSERVATION, len(merge.inserted_token_ids))
        if assistant:
            ep.add_span(_PENDING, merge.appended_token_count)  # labelled once the turn is parsed
        else:
            ep.add_span(OBSERVATION, merge.appended_token_count)

    async def _parse(self, ep: _Episode, token_ids: Sequence[int]) -> ParsedTurn:
        names = ep.env.callable_names()

        def work() -> ParsedTurn:
            return parse_turn(
                decode_turn(token_ids, self.tokenizer),
                trial_mode=self.cfg.trial_mode,
                tool_names=names,
                max_calls=self.cfg.max_calls_per_turn,
            )

        if len(token_ids) <= _INLINE_PARSE_TOKENS:
            return work()
        return await self.loop.run_in_executor(None, work)

    # ------------------------------------------------------------------ protocol

    def _final_turn(self, ep: _Episode, turn: ParsedTurn) -> None:
        """The response budget is spent: record the turn; only a complete final answer still counts."""
        record = self._record(ep, turn)
        if turn.answer is not None and turn.stopped:  # a complete answer still counts
            ep.answers[ep.user_turn] = turn.answer
            ep.counts["answer_turns"] += 1
            last = ep.user_turn == ep.n_user_turns - 1
            ep.termination = "answered" if last else "response_budget"
        else:
            ep.termination = "response_budget"
            record["not_run"] = len(turn.calls)
            if turn.stopped and turn.violation:  # a complete but malformed turn; a cut one is not judged
                ep.violation(turn.violation)
                record["violation"], record["violations"] = turn.violation, [turn.violation]

    async def _handle_turn(self, ep: _Episode, turn: ParsedTurn) -> list[dict[str, Any]]:
        """Apply one parsed turn; return the context messages to append (empty when the episode ended)."""
        cfg = self.cfg
        record = self._record(ep, turn)
        kind, error = turn.violation, turn.error
        if kind is None and turn.phase == TRIAL:
            if ep.executed and not cfg.allow_retrial:
                kind, error = "trial_after_execute", "a <trial> reply came after an <execute> reply."
            elif ep.trial_turns >= cfg.max_trial_turns:
                kind, error = "trial_budget", f"all {cfg.max_trial_turns} trial replies of this request are used."
        elif kind is None and turn.phase == EXECUTE and ep.execute_turns >= cfg.max_execute_turns:
            kind, error = "execute_budget", f"all {cfg.max_execute_turns} execute replies of this request are used."

        context: list[dict[str, Any]] = []
        if kind is not None:  # the whole turn is void: nothing runs
            ep.violation(kind)
            record["violation"], record["violations"] = kind, [kind]
            if kind == "no_tag" and not turn.calls and cfg.no_tag_action == "stop":
                ep.termination = "no_tag_stop"
                return []
            if turn.calls:  # one response for all of them: thousands of calls must not flood the context
                n = len(turn.calls)
                context.append(tool_message(prompts.not_run_text(f"the reply broke the protocol ({kind}); none of its {n} tool call(s) ran.")))
            context.append({"role": "user", "content": prompts.violation_feedback(kind, error)})
        elif turn.phase == ANSWER:
            ep.answers[ep.user_turn] = turn.answer
            ep.counts["answer_turns"] += 1
            if ep.user_turn + 1 >= ep.n_user_turns:
                ep.termination = "answered"
                return []
            context.append(await self._next_user_turn(ep))
        else:
            kinds = [c.violation for c in turn.calls if c.violation and c.violation != "too_many_calls"]
            if any(c.violation == "too_many_calls" for c in turn.calls):
                kinds.append("too_many_calls")  # once per turn, however many calls were over the budget
            for k in kinds:
                ep.violation(k)
            record["violations"] = kinds
            record["violation"] = record["violations"][0] if record["violations"] else None
            context += await self._run_calls(ep, turn)
            note = self._count_phase_turn(ep, turn.phase)
            if note:
                context.append({"role": "user", "content": note})
        if cfg.max_violations is not None and ep.n_violations >= cfg.max_violations:
            ep.termination = "max_violations"
            return []
        return context

    def _record(self, ep: _Episode, turn: ParsedTurn) -> dict[str, Any]:
        record = {"phase": turn.phase, "user_turn": ep.user_turn, "violation": None, "violations": [], "n_calls": len(turn.calls)}
        ep.turns.append(record)
        return record

    def _count_phase_turn(self, ep: _Episode, phase: str) -> str | None:
        """Count an accepted trial/execute turn; return the budget notice when this turn spent the budget."""
        if phase == TRIAL:
            ep.trial_turns += 1
            ep.counts["trial_turns"] += 1
            if ep.trial_turns == self.cfg.max_trial_turns:
                return prompts.trial_budget_notice(ep.trial_turns)
        else:
            ep.executed = True
            ep.execute_turns += 1
            ep.counts["execute_turns"] += 1
            if ep.execute_turns == self.cfg.max_execute_turns:
                return prompts.execute_budget_notice(ep.execute_turns)
        return None

    async def _next_user_turn(self, ep: _Episode) -> dict[str, Any]:
        """Move the environment to the next user turn and build that user message."""
        await self._drop_fork(ep)
        before = set(ep.env.tool_names())
        ep.user_turn += 1
        ep.trial_turns = ep.execute_turns = 0
        ep.executed = False
        ep.env.set_turn(ep.user_turn)
        text = ep.follow_up[ep.user_turn - 1]
        if self.cfg.announce_new_tools:
            new = [t for t in ep.env.tools() if t["function"]["name"] not in before]
            if new:
                text = prompts.new_tools_note(new) + text
        return {"role": "user", "content": text}

    # ------------------------------------------------------------------ tools

    async def _run_calls(self, ep: _Episode, turn: ParsedTurn) -> list[dict[str, Any]]:
        phase = turn.phase
        if phase == TRIAL:
            if ep.fork is None:
                try:
                    ep.fork = ep.env.fork()
                    ep.fork.set_turn(ep.user_turn)
                except Exception as e:  # without a scratch copy a trial must not touch the real environment
                    logger.warning("fork() of %s failed: %r", type(ep.env).__name__, e)
                    ep.fork = None
                    return self._unforkable(ep, turn, e)
            target = ep.fork
        else:
            await self._drop_fork(ep)  # trials of this user turn are over
            target = ep.env
        messages: list[dict[str, Any]] = []
        runnable: list[tuple[int, ToolCall]] = []
        results: dict[int, tuple[Observation, float]] = {}
        for i, call in enumerate(turn.calls):
            if call.ok:
                runnable.append((i, call))
        step = self.cfg.max_parallel_calls
        with compat.simple_timer("tool_calls", ep.metrics):
            for g in range(0, len(runnable), step):  # groups run one after another, so order is kept
                group = runnable[g : g + step]
                if len(group) == 1:
                    outs = [await self._call(target, group[0][1])]
                else:
                    outs = await asyncio.gather(*(self._call(target, c) for _, c in group))
                results.update({i: o for (i, _), o in zip(group, outs)})
        excess = [c for c in turn.calls if c.violation == "too_many_calls"]
        for i, call in enumerate(turn.calls):
            if call.violation == "too_many_calls":
                continue
            if call.ok:
                obs, latency = results[i]
            else:
                kind = "unknown_tool" if call.violation == "unknown_tool" else "bad_arguments"
                obs, latency = Observation(False, f"Error: {call.error}", kind), 0.0
            text = self._clip(ep, obs.text)
            messages.append(tool_message(text, call.name or None))
            ep.calls.append(self._log_entry(ep, target, phase, call, obs, text, latency))
            ep.counts[f"{phase}_calls"] += 1
            if not obs.ok:
                ep.counts["tool_errors"] += 1
        if excess:  # one response for all excess calls, however many there are
            reason = f"at most {self.cfg.max_calls_per_turn} tool calls per reply; the other {len(excess)} call(s) did not run."
            messages.append(tool_message(prompts.not_run_text(reason)))
        return messages

    def _unforkable(self, ep: _Episode, turn: ParsedTurn, error: Exception) -> list[dict[str, Any]]:
        """Trial calls when the environment cannot be copied: each fails with the reason, nothing runs."""
        messages = []
        for call in turn.calls[: self.cfg.max_calls_per_turn]:
            obs = Observation(False, f"Error: trials are unavailable: the environment could not be copied ({type(error).__name__}: {error}).", "exception")
            text = self._clip(ep, obs.text)
            messages.append(tool_message(text, call.name or None))
            ep.calls.append(self._log_entry(ep, ep.env, TRIAL, call, obs, text, 0.0))
            ep.counts["trial_calls"] += 1
            ep.counts["tool_errors"] += 1
        return messages

    async def _call(self, env: ToolEnv, call: ToolCall) -> tuple[Observation, float]:
        started = time.perf_counter()
        try:
            obs = await _with_timeout(env.call(call.name, call.arguments), self.cfg.tool_timeout_s)
        except asyncio.TimeoutError:
            obs = Observation(False, f"Error: the call to {call.name!r} timed out after {self.cfg.tool_timeout_s:g} s.", "timeout")
        except Exception as e:  # an environment must not raise for a bad call; if one does, the model still gets feedback
            logger.warning("environment %s raised on %s: %r", type(env).__name__, call.name, e)
            obs = Observation(False, f"Error: the tool {call.name!r} failed: {type(e).__name__}: {e}", "exception")
        latency = obs.latency_s if obs.latency_s else time.perf_counter() - started
        return obs, latency

    def _clip(self, ep: _Episode, text: str) -> str:
        limit, side = self.cfg.max_tool_response_length, self.cfg.tool_response_truncate_side
        if len(text) <= limit:
            return text
        ep.counts["truncated_outputs"] += 1
        if side == "left":
            return "(truncated)..." + text[-limit:]
        if side == "right":
            return text[:limit] + "...(truncated)"
        half = limit // 2
        return text[:half] + "...(truncated)..." + text[-half:]

    @staticmethod
    def _log_entry(ep: _Episode, env: ToolEnv, phase: str, call: ToolCall, obs: Observation, text: str, latency: float) -> dict[str, Any]:
        entry: dict[str, Any] = {"phase": phase, "turn": ep.user_turn, "name": call.name, "arguments": call.arguments}
        if call.ok:
            try:
                name, arguments = env.canonical(call.name, call.arguments)
            except Exception as e:  # a broken mapping is recorded, not hidden
                logger.warning("canonical(%r) failed: %r", call.name, e)
                entry["canonical_error"] = f"{type(e).__name__}: {e}"
            else:
                if (name, arguments) != (call.name, call.arguments):
                    entry.update(name=name, arguments=arguments, called_name=call.name, called_arguments=call.arguments)
        entry.update(ok=bool(obs.ok), error_kind=obs.error_kind, text=text, latency_s=float(latency))
        return entry

    # ------------------------------------------------------------------ teardown and output

    async def _drop_fork(self, ep: _Episode) -> None:
        fork, ep.fork = ep.fork, None
        if fork is not None:
            await self._close_one(ep, fork, "fork")

    async def _close(self, ep: _Episode) -> None:
        await self._drop_fork(ep)
        await self._close_one(ep, ep.env, "env")

    @staticmethod
    async def _close_one(ep: _Episode, env: ToolEnv, what: str) -> None:
        try:
            await env.close()
        except Exception as e:  # closing must not lose the trajectory; the failure is logged and reported
            logger.warning("closing the %s %s failed: %r", what, type(env).__name__, e)
            ep.close_errors.append(f"{what}: {type(e).__name__}: {e}")

    def _output(self, ep: _Episode) -> Any:
        n = len(ep.mask)
        response_ids = ep.prompt_ids[len(ep.prompt_ids) - n :]
        prompt_ids = ep.prompt_ids[: len(ep.prompt_ids) - n]
        limit = self.response_length
        spans = merge_spans(_clip_spans(ep.spans, limit))
        if n > limit and spans and spans[-1][0] != OBSERVATION:  # a turn cut by the budget: label what remains
            cut = parse_turn(decode_turn(response_ids[spans[-1][1] : limit], self.tokenizer), trial_mode=self.cfg.trial_mode)
            spans[-1][0] = cut.span_label
        if ep.termination != "answered":
            ep.violation("answer_missing")
        ep.counts["self_corrections"] = _self_corrections(ep.calls)
        ep.counts["assistant_turns"] = ep.assistant_turns
        info: dict[str, Any] = {
            "version": EXTRA_VERSION,
            "trial_mode": self.cfg.trial_mode,
            "phase_spans": spans,
            "turns": ep.turns,
            "calls": ep.calls,
            "answers": ep.answers,
            "counts": ep.counts,
            "termination": ep.termination or "response_budget",
            "row": ep.row,
        }
        if self._prompt_tokens is not None:  # verl left-truncates longer prompts; counted, never silent
            info.update(prompt_tokens=self._prompt_tokens, prompt_limit=self.prompt_length,
                        prompt_truncated=self._prompt_tokens > self.prompt_length)
        if ep.close_errors:
            info["env_close_errors"] = ep.close_errors
        extra = {**ep.server_extra, "turn_scores": [], "tool_rewards": [], EXTRA_KEY: info}
        if self._want_logprobs or ep.logprobs:
            _pad_logprobs(ep)
        return compat.AgentLoopOutput(
            prompt_ids=prompt_ids,
            response_ids=response_ids[:limit],
            response_mask=ep.mask[:limit],
            response_logprobs=ep.logprobs[:limit] if len(ep.logprobs) == n and (ep.logprobs or self._want_logprobs) else None,
            num_turns=ep.assistant_turns + ep.context_rounds + 1,
            metrics=ep.metrics,
            extra_fields=extra,
        )


def _cap_prompt(self: ToolMasterAgentLoop, prompt_ids: list[int]) -> list[int]:
    """verl's cap of the initial prompt, after noting how many tokens the prompt needed."""
    self._prompt_tokens = len(prompt_ids)
    return getattr(compat.AgentLoopBase, compat.PROMPT_CAP_METHOD)(self, prompt_ids)


setattr(ToolMasterAgentLoop, compat.PROMPT_CAP_METHOD, _cap_prompt)


# ---------------------------------------------------------------------- helpers


_TOKEN_GATES: dict[int, tuple[Any, asyncio.Semaphore]] = {}
TOKEN_BUILDER_CONCURRENCY = int(os.getenv("TOOLMASTER_TOKEN_BUILDER_CONCURRENCY", "2"))


def _token_gate(loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
    """Per-event-loop limit on Continuous Token builds in flight.

    verl runs every ct_* call in the loop's default thread pool. The work is GIL-bound (chat-template
    rendering), so with hundreds of trajectories more threads add no throughput; they only contend with
    the event-loop thread for the GIL and stall it. A small gate keeps the loop responsive.
    """
    hit = _TOKEN_GATES.get(id(loop))
    if hit is None or hit[0] is not loop:
        hit = (loop, asyncio.Semaphore(TOKEN_BUILDER_CONCURRENCY))
        _TOKEN_GATES[id(loop)] = hit
    return hit[1]


async def _with_timeout(coro: Any, seconds: float) -> Any:
    """``asyncio.timeout`` where available (no extra task per call), ``wait_for`` on Python 3.10."""
    if hasattr(asyncio, "timeout"):
        async with asyncio.timeout(seconds):
            return await coro
    return await asyncio.wait_for(coro, timeout=seconds)


def _pad_logprobs(ep: _Episode) -> None:
    """Give logprob 0 to trailing positions that have none, if they are all context (mask 0).

    A trajectory whose generations were empty so far has a mask of context tokens only and no logprobs; every
    trajectory of a batch must still carry logprobs when the server returns them (verl concatenates them).
    """
    missing = ep.mask[len(ep.logprobs) :]
    if missing and not any(missing):
        ep.logprobs = ep.logprobs + [0.0] * len(missing)


def _clip_spans(spans: list[list], limit: int) -> list[list]:
    out = []
    for label, start, end in spans:
        if start >= limit:
            break
        out.append([label, start, min(end, limit)])
    return out


def _self_corrections(calls: list[dict[str, Any]]) -> int:
    """Execute calls that succeed on a tool whose previous call (trial or execute) in the same user turn failed."""
    last_ok: dict[tuple[int, str], bool] = {}
    n = 0
    for c in calls:
        key = (c["turn"], c["name"])
        if c["phase"] == EXECUTE and c["ok"] and last_ok.get(key) is False:
            n += 1
        last_ok[key] = c["ok"]
    return n


def _json_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as e:
            raise ValueError(f"{where} is not valid JSON: {e}") from None
    if value is None:
        return []
    if hasattr(value, "tolist"):  # numpy arrays from parquet
        value = value.tolist()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where} must be a JSON list of user messages (strings), got {value!r:.200}")
    return value


_CONFIG_CACHE: dict[int, tuple[Any, str, tuple[ToolMasterLoopConfig, bool]]] = {}


def _cached_config(trainer_config: Any, rollout_config: Any, entry: Any) -> tuple[ToolMasterLoopConfig, bool]:
    """verl builds one loop instance per trajectory; read the config once per (trainer config, overrides).

    Returns our config and ``rollout.full_determinism`` (request ids are then derived from the row priority).
    """
    custom = rollout_config.get("custom")
    key = json.dumps([to_plain(entry), to_plain(custom.get("toolmaster") if custom else None)], sort_keys=True, default=str)
    hit = _CONFIG_CACHE.get(id(trainer_config))
    if hit is not None and hit[0] is trainer_config and hit[1] == key:
        return hit[2]
    value = (load_config(rollout_config, to_plain(entry)), bool(rollout_config.get("full_determinism", False)))
    apply_runtime(value[0].runtime)  # sandbox / bfcl / http settings of this worker process
    _CONFIG_CACHE[id(trainer_config)] = (trainer_config, key, value)
    return value


def register_with_verl() -> None:
    """Add "toolmaster_agent" to verl's agent-loop registry (see verl_toolmaster.registration)."""
    from .registration import register_agent_loop

    register_agent_loop()
