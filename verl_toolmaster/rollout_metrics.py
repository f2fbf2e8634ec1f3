"""Per-step metrics from the ``toolmaster`` extra field of a batch of trajectories.

verl 0.9.1 logs no per-trajectory agent-loop fields of its own during training, so
:func:`verl_toolmaster.registration.install_step_metrics` adds these to the trainer's step metrics.
"""

from __future__ import annotations

from typing import Any, Iterable

from .protocol.segment import span_problems
from .protocol.tags import OBSERVATION, TERMINATIONS

PREFIX = "toolmaster/"
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
    kinds = sorted({k for i in infos for k in i["counts"].get("violations", {})})
    for kind in kinds:
        out[f"{PREFIX}violations/{kind}/mean"] = sum(i["counts"]["violations"].get(kind, 0) for i in infos) / n
    out[f"{PREFIX}violations/total/mean"] = sum(sum(i["counts"].get("violations", {}).values()) for i in infos) / n
    reasons = sorted(set(TERMINATIONS) | {i.get("termination") for i in infos} - {None})
    for reason in reasons:
        out[f"{PREFIX}termination/{reason}"] = sum(i.get("termination") == reason for i in infos) / n
    return out


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
