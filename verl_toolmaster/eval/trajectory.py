"""One finished row -> the JSON object written to ``trajectories.jsonl``.

Built from the agent loop's output (token ids, mask, the ``toolmaster`` record of agent_io.md) and the reward
manager's ``reward_extra_info``. The text of every response span is decoded with special tokens kept, so the
viewer shows exactly what the policy sampled and what the loop appended.
"""

from __future__ import annotations

from typing import Any

from ..protocol.segment import mask_runs
from ..protocol.tags import EXECUTE, TRIAL, TURN_VIOLATIONS
from .rows import Row

VERSION = 1


def turns_with_calls(record: dict[str, Any], turn_texts: list[str] | None) -> tuple[list[dict[str, Any]], bool]:
    """Assistant turns, each with the call-log entries it produced (observations included).

    The loop logs a reply's calls in order unless the reply was void (a turn-level violation, or no phase),
    cut by the response budget (``not_run``), or the calls exceeded the per-reply budget (``too_many_calls``,
    not logged). Returns (turns, aligned); ``aligned`` is False when the log does not add up, which would mean
    the record breaks the contract (the turns then carry no calls and the viewer says so).
    """
    calls = record.get("calls") or []
    out: list[dict[str, Any]] = []
    pos = 0
    for i, t in enumerate(record.get("turns") or []):
        n_logged = 0
        void = t.get("phase") not in (TRIAL, EXECUTE) or t.get("violation") in TURN_VIOLATIONS or "not_run" in t
        if not void:
            n_logged = int(t.get("n_calls", 0)) - list(t.get("violations") or []).count("too_many_calls")
        turn = {
            "index": i,
            "phase": t.get("phase"),
            "user_turn": t.get("user_turn"),
            "violation": t.get("violation"),
            "text": turn_texts[i] if turn_texts is not None and i < len(turn_texts) else None,
            "calls": calls[pos : pos + n_logged],
        }
        pos += n_logged
        out.append(turn)
    aligned = pos == len(calls)
    if not aligned:
        for t in out:
            t["calls"] = []
    return out, aligned


def build(
    row: Row,
    output: Any,
    reward: dict[str, Any],
    tokenizer: Any,
    *,
    policy: str,
    trial_mode: str,
    system_prompt: str,
    prompt_length: int,
    latency_s: float,
    policy_notes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The trajectory object for a row the loop ran."""
    record = output.extra_fields["toolmaster"]
    ids = list(output.response_ids)
    mask = list(output.response_mask)
    segments = [[label, tokenizer.decode(ids[start:end], skip_special_tokens=False)] for label, start, end in record["phase_spans"]]
    sampled = [tokenizer.decode(ids[s:e], skip_special_tokens=False) for v, s, e in mask_runs(mask) if v == 1]
    n_turns = len(record.get("turns") or [])
    turn_texts = sampled if len(sampled) == n_turns else None
    turns, aligned = turns_with_calls(record, turn_texts)
    info = reward["reward_extra_info"]
    messages = [m for m in row.kwargs["raw_prompt"] if m.get("role") != "system"]
    traj: dict[str, Any] = {
        "version": VERSION,
        "id": row.id,
        "status": "ok",
        "data_source": row.source,
        "split": row.split,
        "level": row.level,
        "policy": policy,
        "trial_mode": trial_mode,
        "system_prompt": system_prompt,
        "score": float(reward["reward_score"]),
        "reward": {k: v for k, v in info.items()},
        "termination": record.get("termination"),
        "counts": record.get("counts"),
        "answers": record.get("answers"),
        "num_turns": int(output.num_turns),
        "prompt_tokens": len(output.prompt_ids),
        "prompt_truncated": len(output.prompt_ids) >= prompt_length,
        "response_tokens": len(ids),
        "latency_s": round(latency_s, 3),
        "messages": [{"role": m.get("role"), "content": m.get("content")} for m in messages],
        "turns": turns,
        "calls_aligned": aligned,
        "turn_texts_aligned": turn_texts is not None,
        "segments": segments,
    }
    if record.get("env_close_errors"):
        traj["env_close_errors"] = record["env_close_errors"]
    if policy_notes:
        traj["policy_notes"] = policy_notes
    return traj


def skipped(row: Row, reason: str, *, policy: str, trial_mode: str, detail: str | None = None) -> dict[str, Any]:
    """The trajectory object of a row the policy does not run (gold policy: ``no_gold``, or ``bad_gold`` with
    ``detail`` saying why the trace cannot be replayed)."""
    traj = {
        "version": VERSION,
        "id": row.id,
        "status": reason,
        "data_source": row.source,
        "split": row.split,
        "level": row.level,
        "policy": policy,
        "trial_mode": trial_mode,
    }
    if detail is not None:
        traj["detail"] = detail
    return traj

