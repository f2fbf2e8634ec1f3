"""The gold policy: an oracle that replays a row's gold trace through the real agent loop.

Per user turn it emits, as protocol text tokenized with the task tokenizer (what a model would sample):
a ``<trial>`` probe (the turn's first gold call, run on the loop's scratch fork), then the gold calls in
``<execute>`` replies, then ``<answer>`` with the gold answer. Everything else is the training stack's:
the loop parses the text, the environment answers the calls, the reward manager scores the trajectory.
So a gold run that does not score 1.0 points at a bug in the data, an environment, the loop or a scorer.

Gold traces come from ``extra_info["gold"]``: per user turn, steps of calls issued together, each call either
``{"name", "arguments"}`` or a Python call string (``f(1, b='x')``, bound onto the tool's parameters with
:mod:`verl_toolmaster.envs.calls`). Names are the real tools'; on perturbed rows they are mapped to the names
the model sees through the environment's own ``canonical`` mapping (inverted, then checked call by call).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..agent_config import ToolMasterLoopConfig
from ..envs import make_env
from ..envs.calls import bind_arguments, parse_call_string
from ..protocol.render import phase_content, tool_call_text, turn_text
from ..protocol.tags import ANSWER, EXECUTE, TRIAL
from .rows import Row, json_field

FALLBACK_ANSWER = "Done."  # answer text of a user turn whose benchmark scores calls or state, not the reply


class GoldError(ValueError):
    """A gold trace that cannot be replayed (malformed, or naming a tool the environment lacks)."""


@dataclass
class PlannedTurn:
    """One reply of the oracle."""

    phase: str  # "trial" | "execute" | "answer"
    body: str  # text inside the phase tag (the answer for "answer")
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "arguments"} as the model sees the tools


def gold_trace(row: Row) -> list[list[list[Any]]] | None:
    """The row's gold trace (None: the benchmark gives none). ``[[]]`` means: make no call, just answer."""
    gold = json_field(row.extra_info, "gold", row.id)
    if gold is None:
        return None
    if not isinstance(gold, list) or not all(isinstance(t, list) and all(isinstance(s, list) for s in t) for t in gold):
        raise GoldError(f"row {row.id}: extra_info['gold'] must be a list (user turns) of lists (steps) of calls")
    return gold


def n_user_turns(row: Row) -> int:
    follow_up = json_field(row.extra_info, "follow_up", row.id) or []
    return 1 + len(follow_up)


def gold_answers(row: Row, n_turns: int) -> list[str]:
    """Answer text per user turn: ``extra_info["gold_answers"]``, else the ground truth's answer / response."""
    answers = json_field(row.extra_info, "gold_answers", row.id)
    if isinstance(answers, list) and answers:
        out = [str(a) if a is not None else FALLBACK_ANSWER for a in answers]
        return (out + [FALLBACK_ANSWER] * n_turns)[:n_turns]
    gt = row.kwargs.get("reward_model", {}).get("ground_truth")
    if isinstance(gt, str):
        try:
            gt = json.loads(gt)
        except json.JSONDecodeError:
            gt = None
    final = None
    if isinstance(gt, dict):
        for key in ("answer", "response"):
            if isinstance(gt.get(key), str) and gt[key].strip():
                final = gt[key]
                break
    return [FALLBACK_ANSWER] * (n_turns - 1) + [final or FALLBACK_ANSWER]


class SurfaceView:
    """Maps real tool calls to the surface the model sees at each user turn, via the environment's API only."""

    def __init__(self, spec: Any, n_turns: int, row_id: str):
        self.row_id = row_id
        self.env = make_env(spec)
        self.maps: list[dict[str, tuple[str, dict[str, str]]]] = []
        for turn in range(n_turns):
            self.env.set_turn(turn)
            self.maps.append(self._inverse())

    def _inverse(self) -> dict[str, tuple[str, dict[str, str]]]:
        """real tool -> (surface name, {real param: surface param}) from ``canonical`` on every visible tool."""
        out: dict[str, tuple[str, dict[str, str]]] = {}
        for tool in self.env.tools():
            surface = tool["function"]["name"]
            params = list(((tool["function"].get("parameters") or {}).get("properties") or {}))
            probe = {p: i for i, p in enumerate(params)}
            real, real_args = self.env.canonical(surface, probe)
            pmap = {}
            if isinstance(real_args, dict):
                pmap = {k: params[v] for k, v in real_args.items() if isinstance(v, int) and 0 <= v < len(params)}
            if real not in out or real != surface:
                out[real] = (surface, pmap)
        return out

    def call(self, turn: int, raw: Any) -> dict[str, Any]:
        """One gold call (dict or call string) as the model would write it at user turn ``turn``."""
        if isinstance(raw, str):
            try:
                name, args, kwargs = parse_call_string(raw)
                arguments = bind_arguments(name, self.env.positional_params(name), args, kwargs)
            except ValueError as e:
                raise GoldError(f"row {self.row_id}: gold call {raw!r}: {e}") from None
        elif isinstance(raw, dict) and isinstance(raw.get("name"), str) and isinstance(raw.get("arguments", {}), dict):
            name, arguments = raw["name"], dict(raw.get("arguments") or {})
        else:
            raise GoldError(f"row {self.row_id}: gold call {raw!r:.200} is neither {{'name', 'arguments'}} nor a call string")
        found = self.maps[turn].get(name)
        if found is None:
            self.env.set_turn(turn)
            if name in self.env.callable_names():  # accepted though not listed (schema kind's unlisted_tools)
                found = (name, {})
        if found is None:
            raise GoldError(f"row {self.row_id}: gold call to {name!r} at user turn {turn}, but the environment offers no such tool then")
        surface, pmap = found
        surface_args = {pmap.get(k, k): v for k, v in arguments.items()}
        self.env.set_turn(turn)
        back = self.env.canonical(surface, surface_args)
        if back != (name, arguments):
            raise GoldError(f"row {self.row_id}: {surface!r}{surface_args} does not map back to the gold call {name!r}{arguments} (got {back!r})")
        return {"name": surface, "arguments": surface_args}

    async def close(self) -> None:
        await self.env.close()


def plan(
    gold: list[list[list[dict[str, Any]]]], answers: list[str], cfg: ToolMasterLoopConfig
) -> tuple[list[PlannedTurn], dict[str, Any]]:
    """The oracle's replies for surface-form gold calls, fitted to the loop's budgets.

    One ``<execute>`` reply per gold step (a step with more calls than ``max_calls_per_turn`` is split: calls
    of one step are independent). When that exceeds ``max_execute_turns`` or ``max_turns``, and the loop runs a
    reply's calls one at a time (``max_parallel_calls == 1``), consecutive calls are packed into full replies in
    gold order. Then trial probes are dropped from the last user turns until ``max_turns`` holds. Notes say
    what was changed, and ``over_budget`` when even that does not fit (the row will then not score 1.0).
    """
    trial_on = cfg.trial_mode == "on" and cfg.max_trial_turns >= 1
    per_turn: list[list[list[dict[str, Any]]]] = []
    notes: dict[str, Any] = {}
    for steps in gold:
        replies = [step[i : i + cfg.max_calls_per_turn] for step in steps for i in range(0, len(step), cfg.max_calls_per_turn)]
        per_turn.append([r for r in replies if r])
    probes = [bool(trial_on and replies) for replies in per_turn]

    def total() -> int:
        return sum(p + len(r) + 1 for p, r in zip(probes, per_turn))

    if (total() > cfg.max_turns or any(len(r) > cfg.max_execute_turns for r in per_turn)) and cfg.max_parallel_calls == 1:
        packed = []
        for replies in per_turn:
            flat = [c for reply in replies for c in reply]
            packed.append([flat[i : i + cfg.max_calls_per_turn] for i in range(0, len(flat), cfg.max_calls_per_turn)])
        if packed != per_turn:
            notes["packed_steps"] = True
        per_turn = packed
    for u in reversed(range(len(probes))):
        if total() <= cfg.max_turns:
            break
        if probes[u]:
            probes[u] = False
            notes["dropped_probes"] = notes.get("dropped_probes", 0) + 1
    if total() > cfg.max_turns or any(len(r) > cfg.max_execute_turns for r in per_turn):
        notes["over_budget"] = True

    turns: list[PlannedTurn] = []
    for u, replies in enumerate(per_turn):
        if probes[u]:
            first = replies[0][0]
            turns.append(PlannedTurn(TRIAL, f"probe {first['name']} once to see what it returns", [first]))
        for k, reply in enumerate(replies):
            turns.append(PlannedTurn(EXECUTE, f"gold step {k + 1} of {len(replies)}", reply))
        turns.append(PlannedTurn(ANSWER, answers[u]))
    return turns, notes


def reply_text(turn: PlannedTurn, trial_mode: str) -> str:
    """The reply as a model following the system prompt of ``trial_mode`` writes it (without end-of-turn)."""
    if trial_mode == "off":  # plain multi-turn tool use: bare calls, then <answer>
        if turn.phase == ANSWER:
            return phase_content(ANSWER, turn.body)
        return "\n".join(tool_call_text(c["name"], c["arguments"]) for c in turn.calls)
    return turn_text(turn.phase, turn.body, turn.calls)


class GoldServer:
    """The per-trajectory ``server_manager``: each ``generate`` returns the next planned reply's token ids."""

    def __init__(self, replies: list[str], tokenizer: Any, notes: dict[str, Any]):
        if not tokenizer.eos_token:
            raise GoldError("the tokenizer has no eos_token to end the oracle's replies with")
        self.replies = [r + tokenizer.eos_token for r in replies]
        self.tokenizer = tokenizer
        self.notes = notes
        self.sent = 0

    async def generate(self, request_id: str, *, prompt_ids: list[int], sampling_params: dict[str, Any], **kw: Any) -> Any:
        from .. import compat

        if self.sent < len(self.replies):
            text = self.replies[self.sent]
        else:  # the loop asked for more replies than planned (it rejected one): repeat the final answer
            text = self.replies[-1]
            self.notes["extra_requests"] = self.notes.get("extra_requests", 0) + 1
        self.sent += 1
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        limit = sampling_params.get("max_tokens")
        if limit is not None and len(ids) > limit:
            ids = ids[:limit]
            self.notes["cut_by_max_tokens"] = self.notes.get("cut_by_max_tokens", 0) + 1
        return compat.TokenOutput(token_ids=ids, log_probs=None, stop_reason="completed", num_preempted=0)


class GoldPolicy:
    """``--policy gold``. Rows without a gold trace are not run; they are reported as ``no_gold``."""

    name = "gold"

    def __init__(self, tokenizer: Any, hf_model_type: str | None, loop_cfg: ToolMasterLoopConfig, tokenizer_path: str):
        self.tokenizer = tokenizer
        self.hf_model_type = hf_model_type
        self.loop_cfg = loop_cfg
        self.tokenizer_path = tokenizer_path

    def describe(self) -> dict[str, Any]:
        return {"policy": self.name, "tokenizer": self.tokenizer_path}

    def skip_reason(self, row: Row) -> str | None:
        return "no_gold" if gold_trace(row) is None else None

    async def server_for(self, row: Row) -> GoldServer:
        gold = gold_trace(row)
        assert gold is not None, "skip_reason() filters rows without gold"
        n_turns = n_user_turns(row)
        notes: dict[str, Any] = {}
        if len(gold) != n_turns:
            notes["gold_turns"] = f"{len(gold)} gold turns for {n_turns} user turns"
            gold = (gold + [[] for _ in range(n_turns)])[:n_turns]
        view = SurfaceView(row.extra_info.get("env"), n_turns, row.id)
        try:
            surface = [[[view.call(u, c) for c in step] for step in steps] for u, steps in enumerate(gold)]
        finally:
            await view.close()
        turns, plan_notes = plan(surface, gold_answers(row, n_turns), self.loop_cfg)
        notes.update(plan_notes)
        notes["planned_replies"] = len(turns)
        return GoldServer([reply_text(t, self.loop_cfg.trial_mode) for t in turns], self.tokenizer, notes)

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None
