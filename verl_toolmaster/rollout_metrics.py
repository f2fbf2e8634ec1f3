"""Per-step metrics from the ``toolmaster`` extra field of a batch of trajectories.

verl 0.9.1 logs no per-trajectory agent-loop fields of its own during training, so
:func:`verl_toolmaster.registration.install_step_metrics` adds these to the trainer's step metrics.
"""

from __future__ import annotations

from typing import Any, Iterable

from .protocol.segment import span_problems
from .protocol.tags import OBSERVATION, TERMINATIONS

PREFIX = "toolmaster/"
# group_metrics' names, read back by the reports
ZERO_SPREAD = f"{PREFIX}grpo/zero_spread_share"
ANSWER_MIXED = f"{PREFIX}grpo/answer_mixed_share"
GROUPS = f"{PREFIX}grpo/groups"
_COUNTS = ("trial_turns", "execute_turns", "answer_turns", "trial_calls", "execute_calls", "tool_errors",
           "self_corrections", "truncated_outputs", "assistant_turns")


def step_metrics(infos: Iterable[dict[str, Any] | None]) -> dict[str, float]:
    """Aggregate trajectories' ``extra_fields["toolmaster"]`` dicts: mean/max of each count, mean of each
    violation kind and of the violation total, and the fraction of each termination reason.
    Trajectories of other agent loops (``None``) are skipped; no trajectory of ours gives ``{}``."""
    infos = [i for i in infos if isinstance(i, dict) and "counts" in i]
    if not infos:
        return {}
    n = len(infos)
    out: dict[str, float] = {f"{PREFIX}trajectories": float(n)}
    for key in _COUNTS:
        values = [float(i["counts"].get(key, 0)) for i in infos]
        out[f"{PREFIX}{key}/mean"] = sum(values) / n
        out[f"{PREFIX}{key}/max"] = max(values)
    tool_seconds = [sum(float(c.get("latency_s") or 0.0) for c in i.get("calls") or ()) for i in infos]
    out[f"{PREFIX}tool_seconds/mean"] = sum(tool_seconds) / n  # time inside tool calls, per trajectory
    out[f"{PREFIX}tool_seconds/sum"] = sum(tool_seconds)  # over the step's trajectories (they overlap in time)
    errors: dict[str, int] = {}
    for i in infos:
        for c in i.get("calls") or ():
            if not c.get("ok", True):
                kind = str(c.get("error_kind") or "exception")
                errors[kind] = errors.get(kind, 0) + 1
    for kind, n_errors in sorted(errors.items()):  # timeouts, worker crashes (resource), http faults, ...
        out[f"{PREFIX}tool_errors/{kind}/count"] = float(n_errors)
    out.update(_truncation_metrics(infos))
    kinds = sorted({k for i in infos for k in i["counts"].get("violations", {})})
    for kind in kinds:
        out[f"{PREFIX}violations/{kind}/mean"] = sum(i["counts"]["violations"].get(kind, 0) for i in infos) / n
    out[f"{PREFIX}violations/total/mean"] = sum(sum(i["counts"].get("violations", {}).values()) for i in infos) / n
    reasons = sorted(set(TERMINATIONS) | {i.get("termination") for i in infos} - {None})
    for reason in reasons:
        out[f"{PREFIX}termination/{reason}"] = sum(i.get("termination") == reason for i in infos) / n
    return out


def _truncation_metrics(infos: list[dict[str, Any]]) -> dict[str, float]:
    """Prompts verl left-truncated to ``rollout.prompt_length`` (their system text and tool catalogue lose their
    start): count, share, and the most tokens any prompt of the step needed."""
    sized = [i for i in infos if "prompt_tokens" in i]
    if not sized:
        return {}
    cut = sum(bool(i.get("prompt_truncated")) for i in sized)
    return {f"{PREFIX}prompt_truncated/count": float(cut), f"{PREFIX}prompt_truncated/share": cut / len(sized),
            f"{PREFIX}prompt_tokens/max": float(max(i["prompt_tokens"] for i in sized))}


def truncation_warning(infos: Iterable[dict[str, Any] | None], prompt_length: int | None = None) -> str | None:
    """The warning for a step with truncated prompts, naming the longest row and the length it needs; else None."""
    cut = [i for i in infos if isinstance(i, dict) and i.get("prompt_truncated")]
    if not cut:
        return None
    worst = max(cut, key=lambda i: i.get("prompt_tokens", 0))
    limit = worst.get("prompt_limit", prompt_length)
    return (f"{len(cut)} prompt(s) of this step exceed data.max_prompt_length={limit} and were left-truncated by verl (their "
            f"system text and tool catalogue lose their start); the longest, row {worst.get('row', '?')}, needs "
            f"{worst['prompt_tokens']} tokens. Raise data.max_prompt_length (and rollout.prompt_length) to at least that, or "
            "drop such rows with `prepare.py --tokenizer PATH --max-prompt-tokens N` (metric toolmaster/prompt_truncated/*; "
            "this warning is shown once per process)")


def mask_metrics(infos: list[dict[str, Any] | None], masks: list[list[int]]) -> dict[str, float]:
    """Check, per trajectory, that the trainer's ``response_mask`` is 0 exactly on the observation tokens the
    loop recorded (tool responses, feedback and next-turn prompts never enter the policy loss).

    ``toolmaster/mask_mismatch/mean`` is the share of trajectories where it is not (should be 0);
    ``toolmaster/observation_tokens/mean`` the mean number of masked-out response tokens."""
    pairs = [(i, m) for i, m in zip(infos, masks) if isinstance(i, dict) and i.get("phase_spans")]
    if not pairs:
        return {}
    mismatched, observed = 0, 0
    for info, mask in pairs:
        spans = info["phase_spans"]
        n = spans[-1][2]
        mismatched += bool(span_problems(spans, mask[:n]) or any(mask[n:]))  # beyond the spans: padding only
        observed += sum(end - start for label, start, end in spans if label == OBSERVATION)
    return {f"{PREFIX}mask_mismatch/mean": mismatched / len(pairs),
            f"{PREFIX}observation_tokens/mean": observed / len(pairs)}


def group_metrics(uids: list[Any], rewards: list[dict[str, Any] | None]) -> dict[str, float]:
    """GRPO signal of a training step: samples grouped by prompt (``uid``); a group whose scores are all equal has
    zero advantage everywhere, so it teaches nothing. ``toolmaster/grpo/zero_spread_share``: share of such groups;
    ``toolmaster/grpo/answer_mixed_share``: share of groups where some samples solved the task and some did not;
    ``toolmaster/grpo/groups``. Samples without a score are left out (``toolmaster/missing/reward`` counts them)."""
    groups: dict[Any, list[dict[str, Any]]] = {}
    for uid, info in zip(uids, rewards):
        if isinstance(info, dict) and isinstance(info.get("score"), (int, float)):
            groups.setdefault(uid, []).append(info)
    if not groups:
        return {}
    n = len(groups)
    zero = sum(max(float(i["score"]) for i in g) - min(float(i["score"]) for i in g) == 0.0 for g in groups.values())
    mixed = sum(len({float(i.get("answer") or 0.0) > 0.5 for i in g}) > 1 for g in groups.values())
    return {GROUPS: float(n), ZERO_SPREAD: zero / n, ANSWER_MIXED: mixed / n}
