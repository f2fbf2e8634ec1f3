"""Scripted protocol trajectories for tests and benchmarks: token ids, response mask and the "toolmaster" record
of an episode, built with the protocol's own renderer, parser and segmenter and tokenised turn by turn (as the
agent loop appends tokens), plus the DataProto verl's agent-loop worker hands the reward loop."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verl_toolmaster.protocol import parse_turn, phase_spans
from verl_toolmaster.protocol.render import turn_text
from verl_toolmaster.reward.text_record import episode_record

CONTEXT = "\n<|im_start|>user\n{obs}<|im_end|>\n<|im_start|>assistant\n"  # Qwen glue, mask 0
EOT = "<|im_end|>"


@dataclass
class Step:
    """One assistant turn: phase ("trial"|"execute"|"answer"|None for raw text), body, calls with outcomes."""

    phase: str | None
    body: str
    calls: list[dict[str, Any]] = field(default_factory=list)  # {"name","arguments","ok","text","error_kind"}


@dataclass
class Trajectory:
    response_ids: list[int]
    response_mask: list[int]
    record: dict[str, Any]
    text: str


def build_trajectory(tokenizer, steps: list[Step], user_turn: int = 0) -> Trajectory:
    """Token ids, mask and the "toolmaster" record of a scripted single-user-turn episode."""
    ids: list[int] = []
    mask: list[int] = []
    calls: list[dict[str, Any]] = []
    turns: list[dict[str, Any]] = []
    violations: dict[str, int] = {}
    answer = None
    executed = False
    for i, step in enumerate(steps):
        text = (turn_text(step.phase, step.body, step.calls) if step.phase else step.body) + EOT
        parsed = parse_turn(text)
        kinds = list(parsed.violations)
        if parsed.phase == "trial" and executed:
            kinds.append("trial_after_execute")
        executed = executed or parsed.phase == "execute"
        for k in kinds:
            violations[k] = violations.get(k, 0) + 1
        turns.append({"phase": parsed.phase, "user_turn": user_turn, "violation": kinds[0] if kinds else None, "n_calls": len(parsed.valid_calls)})
        if parsed.answer is not None:
            answer = parsed.answer
        piece = tokenizer.encode(text, add_special_tokens=False)
        ids += piece
        mask += [1] * len(piece)
        if parsed.phase in ("trial", "execute") and parsed.violation is None:
            obs = []
            for c in step.calls:
                calls.append({"phase": parsed.phase, "turn": user_turn, "name": c["name"], "arguments": c["arguments"],
                              "ok": c.get("ok", True), "error_kind": c.get("error_kind"), "text": c.get("text", "ok"), "latency_s": 0.0})
                obs.append(f"<tool_response>\n{c.get('text', 'ok')}\n</tool_response>")
            if i < len(steps) - 1:
                ctx = tokenizer.encode(CONTEXT.format(obs="\n".join(obs)), add_special_tokens=False)
                ids += ctx
                mask += [0] * len(ctx)
        elif i < len(steps) - 1:
            ctx = tokenizer.encode(CONTEXT.format(obs="Feedback: follow the protocol."), add_special_tokens=False)
            ids += ctx
            mask += [0] * len(ctx)
    if answer is None:
        violations["answer_missing"] = violations.get("answer_missing", 0) + 1
    record = episode_record("on", phase_spans(ids, mask, tokenizer), turns, calls, answer, violations, "turn_budget")
    return Trajectory(ids, mask, record, tokenizer.decode(ids, skip_special_tokens=False))


def obj_array(items: list[Any]) -> np.ndarray:
    """A 1-D object array (np.array would turn a list of lists into a 2-D array)."""
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


PROMPT = "<|im_start|>user\nplease help<|im_end|>\n<|im_start|>assistant\n"


def make_batch(tokenizer, samples: list[dict[str, Any]], record_column: str = "tool_extra_fields"):
    """A DataProto like the one verl's agent-loop worker hands the reward loop.

    Each sample: {"traj": Trajectory | None, "text": str (when no traj), "source": str, "gt": dict,
    "env": dict | None, "record": dict | None (overrides traj.record; "absent" for none)}.
    ``record_column``: "tool_extra_fields" (per-trajectory scoring) or "toolmaster" (batch scoring column).
    """
    import torch
    from verl import DataProto

    prompt = tokenizer.encode(PROMPT, add_special_tokens=False)
    responses, records = [], []
    for s in samples:
        traj = s.get("traj")
        responses.append(traj.response_ids if traj else tokenizer.encode(s.get("text", ""), add_special_tokens=False))
        rec = s.get("record", traj.record if traj else None)
        records.append(None if rec == "absent" else rec)
    width = max(1, max(len(r) for r in responses))
    pad = tokenizer.pad_token_id
    resp = torch.full((len(samples), width), pad, dtype=torch.long)
    attn = torch.zeros((len(samples), len(prompt) + width), dtype=torch.long)
    for i, r in enumerate(responses):
        resp[i, : len(r)] = torch.tensor(r, dtype=torch.long)
        attn[i, : len(prompt) + len(r)] = 1
    prompts = torch.tensor([prompt] * len(samples), dtype=torch.long)
    non_tensors: dict[str, Any] = {
        "data_source": obj_array([s["source"] for s in samples]),
        "reward_model": obj_array([{"style": "rule", "ground_truth": json.dumps(s["gt"])} for s in samples]),
        "extra_info": obj_array([{"index": i, "env": json.dumps(s.get("env") or {})} for i, s in enumerate(samples)]),
        "raw_prompt": obj_array([[{"role": "user", "content": "please help"}] for _ in samples]),
        "index": obj_array(list(range(len(samples)))),
    }
    if record_column == "tool_extra_fields":
        non_tensors["tool_extra_fields"] = obj_array([({"toolmaster": r} if r is not None else {}) for r in records])
    else:
        non_tensors["toolmaster"] = obj_array(records)
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": resp, "attention_mask": attn, "input_ids": torch.cat([prompts, resp], 1)},
        non_tensors=non_tensors,
        meta_info={"global_steps": 1, "validate": False},
    )
