"""What a synthesized trajectory must satisfy before it becomes an SFT row, each failure a named drop reason.

* the episode ended with an accepted answer and without protocol violations (the loop's own parser judged it);
* every sampled assistant turn survives a round trip through the protocol module: its chat message rendered as
  model text (the chat template's layout, :func:`verl_toolmaster.protocol.render.tool_call_text`) parses back to the
  same phase and the same calls, with no violation;
* it contains a trial (and, for the scripted teacher, a failed probe that a later call of the same tool fixed, and
  exactly the call outcomes the teacher planned);
* the RL scorer of the row's data source (``reward.scorers`` registry, the same instance type the reward manager
  uses) scores it correct;
* optionally it fits a token budget under the SFT tokenizer's chat template.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from verl_toolmaster.protocol.parse import parse_turn
from verl_toolmaster.protocol.render import tool_call_text
from verl_toolmaster.protocol.tags import TRIAL
from verl_toolmaster.reward.scorers import Episode, Scorer, ScoreResult, load_builtin_scorers
from verl_toolmaster.reward.scorers.matching import answers_match, contains_phrase, normalize_text

from .driver import EpisodeResult


class Rejected(Exception):
    """A trajectory failed a check; ``reason`` is the drop reason counted in the report."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Requirements:
    """Which checks apply (all of them for the scripted teacher)."""

    trial: bool = True  # at least one trial call
    failed_probe: bool = False  # a trial call the environment rejected, then a successful call of the same tool in that user turn
    no_violations: bool = True  # no protocol violation anywhere in the episode
    answer_observed: bool = False  # for sources scored on a final answer (toolhop): the answer appears in an execute observation
    max_length: int | None = None  # tokens of the SFT row under the tokenizer's chat template (None: unchecked)
    expected_calls: list[dict[str, Any]] | None = field(default=None)  # planned (phase, turn, name, ok) of every call
    exact_text: bool = False  # each turn as sampled equals its SFT message rendered back (canonical teacher output)


_SCORERS: dict[str, Scorer] = {}


def scorer_for(source: str) -> Scorer:
    """The RL scorer registered for ``source`` (built like the reward manager builds it; default judge settings)."""
    if source not in _SCORERS:
        registry = load_builtin_scorers()
        if source not in registry:
            raise Rejected("no_scorer", f"no scorer is registered for data_source {source!r}; known: {sorted(registry)}")
        _SCORERS[source] = registry[source]()
    return _SCORERS[source]


async def score(row: dict[str, Any], record: dict[str, Any]) -> ScoreResult:
    """Score a finished episode's record with the row's RL scorer."""
    source = row["data_source"]
    scorer = scorer_for(source)
    ground_truth = json.loads(row["reward_model"]["ground_truth"])
    env_spec = json.loads(row["extra_info"]["env"]) if scorer.needs_env_spec else None
    episode = Episode(answers=list(record["answers"]), calls=list(record["calls"]), env_spec=env_spec)
    if scorer.cpu_heavy:  # bfcl_multi re-executes calls: keep the event loop free for other episodes
        return await asyncio.get_running_loop().run_in_executor(None, scorer.score, ground_truth, episode)
    return await scorer.ascore(ground_truth, episode)


def message_text(message: dict[str, Any]) -> str:
    """An assistant message as the model text the chat template renders for it (content, then each call)."""
    text = message.get("content") or ""
    for call in message.get("tool_calls") or []:
        fn = call["function"]
        text += "\n" + tool_call_text(fn["name"], fn["arguments"])
    return text


def check_round_trip(result: EpisodeResult, tool_names: list[str], trial_mode: str, exact_text: bool = False) -> None:
    """Every sampled assistant turn renders and parses back to the phase the loop recorded and the same calls; with
    ``exact_text`` the rendered message is also byte-identical to the turn as it was sampled."""
    sampled = [m for m in result.messages if m.get("role") == "assistant"][-len(result.turn_texts) :] if result.turn_texts else []
    turns = result.record["turns"]
    if len(sampled) != len(turns):
        raise Rejected("round_trip", f"{len(sampled)} assistant messages for {len(turns)} recorded turns")
    for i, (message, turn) in enumerate(zip(sampled, turns)):
        parsed = parse_turn(message_text(message), trial_mode=trial_mode, tool_names=tool_names)
        if parsed.violations:
            raise Rejected("round_trip", f"turn {i}: the rendered message parses with violations {parsed.violations}")
        if parsed.phase != turn["phase"]:
            raise Rejected("round_trip", f"turn {i}: phase {parsed.phase!r} after the round trip, {turn['phase']!r} in the episode")
        written = [(c["function"]["name"], c["function"]["arguments"]) for c in message.get("tool_calls") or []]
        if [(c.name, c.arguments) for c in parsed.calls] != written:
            raise Rejected("round_trip", f"turn {i}: the calls differ after the round trip")
        if exact_text and parse_turn(result.turn_texts[i], trial_mode=trial_mode).text != message_text(message):
            raise Rejected("round_trip", f"turn {i}: the SFT message renders to other text than was sampled")


def check_trials(record: dict[str, Any], req: Requirements) -> None:
    calls = record["calls"]
    if req.trial and not any(c["phase"] == TRIAL for c in calls):
        raise Rejected("no_trial")
    if req.failed_probe:
        fixed = False
        for i, c in enumerate(calls):
            if c["phase"] == TRIAL and not c["ok"]:
                fixed = any(d["ok"] and d["turn"] == c["turn"] and d["name"] == c["name"] for d in calls[i + 1 :])
                if fixed:
                    break
        if not fixed:
            raise Rejected("no_failed_probe", "no rejected trial call followed by a successful call of the same tool")


def check_expected(record: dict[str, Any], expected: list[dict[str, Any]]) -> None:
    got = [{"phase": c["phase"], "turn": c["turn"], "name": c["name"], "ok": c["ok"]} for c in record["calls"]]
    if got != expected:
        for i, (g, e) in enumerate(zip(got, expected)):
            if g != e:
                text = " ".join(str(record["calls"][i].get("text", "")).split())[:200]
                # a gold call the real environment rejected has its own reason: the benchmark's trace is at fault
                reason = (
                    "gold_call_rejected"
                    if e["phase"] == "execute" and e["ok"] and g["name"] == e["name"] and not g["ok"]
                    else "unexpected_observation"
                )
                raise Rejected(reason, f"call {i} ({e['phase']} {e['name']}): planned ok={e['ok']}, got ok={g['ok']}: {text}")
        raise Rejected("unexpected_observation", f"{len(got)} calls ran, {len(expected)} planned")


def check_answer_observed(record: dict[str, Any]) -> None:
    """Each non-empty answer appears in an execute observation of its user turn (a normalised phrase or number)."""
    for turn, answer in enumerate(record["answers"]):
        if not answer:
            continue
        texts = [str(c.get("text", "")) for c in record["calls"] if c["phase"] == "execute" and c["turn"] == turn and c["ok"]]
        tokens = normalize_text("\n".join(texts)).split()
        if not (contains_phrase(tokens, answer) or any(answers_match(answer, t) for t in texts)):
            raise Rejected("answer_not_observed", f"turn {turn}: answer {answer[:80]!r} is in no execute observation")


def token_length(messages: list[dict[str, Any]], tools: list[dict[str, Any]], tokenizer: Any) -> int:
    ids = tokenizer.apply_chat_template(messages, tools=tools or None, tokenize=True, add_generation_prompt=False)
    if isinstance(ids, dict) or hasattr(ids, "keys"):
        ids = ids["input_ids"]
    return len(ids)


async def check(row: dict[str, Any], result: EpisodeResult, req: Requirements, tokenizer: Any = None) -> ScoreResult:
    """Run every check; return the score of a kept trajectory or raise :class:`Rejected` with the first failure."""
    record = result.record
    if record["termination"] != "answered":
        raise Rejected(f"termination:{record['termination']}")
    violations = {k: v for k, v in record["counts"]["violations"].items() if v}
    if req.no_violations and violations:
        raise Rejected(f"violation:{sorted(violations)[0]}", json.dumps(violations))
    if req.expected_calls is not None:
        check_expected(record, req.expected_calls)
    check_round_trip(result, result.tool_names, record["trial_mode"], req.exact_text)
    check_trials(record, req)
    result_score = await score(row, record)
    if result_score.answer < 1.0:
        raise Rejected(f"score:{result_score.reason}", f"answer={result_score.answer:.3f}")
    if req.answer_observed:
        check_answer_observed(record)
    if req.max_length is not None:
        if tokenizer is None:
            raise ValueError("Requirements.max_length needs the SFT tokenizer")
        n = token_length(result.messages, result.tools, tokenizer)
        if n > req.max_length:
            raise Rejected("too_long", f"{n} tokens > {req.max_length}")
    return result_score


def sft_row(row: dict[str, Any], result: EpisodeResult, teacher: str, variant: int) -> dict[str, Any]:
    """The SFT row (in-memory form: argument dicts, tool objects) of a kept trajectory; same columns as
    :func:`verl_toolmaster.data.sft.sft_row` plus the teacher and the variant index."""
    return {
        "messages": result.messages,
        "tools": result.tools,
        "data_source": row["data_source"],
        "task_id": str(row["extra_info"].get("task_id", row["extra_info"].get("index"))),
        "teacher": teacher,
        "variant": variant,
    }
