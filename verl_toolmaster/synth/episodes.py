"""One synthesis item end to end: teacher -> agent loop -> checks -> SFT row (or a drop reason)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .driver import LoopSettings, run_episode
from .quality import Rejected, Requirements, check, sft_row
from .runner import DROPPED, FAILED, KEPT, Outcome, WorkItem, trajectory_stats
from .scripted import ScriptedOptions, ScriptedTeacher, Unplannable, precheck


@dataclass
class LengthLimit:
    """Drop rows longer than ``max_length`` tokens under ``tokenizer``'s chat template (the SFT stage's limit)."""

    max_length: int | None = None  # None: no limit
    tokenizer: Any = None  # the SFT model's tokenizer


def scripted_episode(settings: LoopSettings, options: ScriptedOptions, limit: LengthLimit) -> Callable[[WorkItem], Awaitable[Outcome]]:
    loop_config = settings.loop_config()

    async def episode(item: WorkItem) -> Outcome:
        row = item.row
        reason = precheck(row)
        if reason is not None:
            return Outcome(item.key, DROPPED, reason)
        teacher = ScriptedTeacher(row, options, loop_config, item.variant)
        try:
            result = await run_episode(row, teacher, settings)
        except Unplannable as e:
            return Outcome(item.key, DROPPED, e.reason, e.detail)
        finally:
            await teacher.close()
        req = Requirements(
            trial=True,
            failed_probe=True,
            answer_observed=row["data_source"] == "toolhop",
            max_length=limit.max_length,
            expected_calls=teacher.expected,
            exact_text=True,
        )
        try:
            await check(row, result, req, limit.tokenizer)
        except Rejected as e:
            return Outcome(item.key, DROPPED, e.reason, e.detail)
        stats = {**trajectory_stats(result.record), **{f"probe:{k}": 1 for k in teacher.probe_kinds}}
        return Outcome(item.key, KEPT, sft=sft_row(row, result, "scripted", item.variant), stats=stats)

    return episode


def llm_episode(
    settings: LoopSettings,
    make_teacher: Callable[[WorkItem], Any],
    sampling_params: dict[str, Any],
    limit: LengthLimit,
    teacher_name: str,
    allow_violations: bool = False,
) -> Callable[[WorkItem], Awaitable[Outcome]]:
    from .llm import EndpointFailure

    async def episode(item: WorkItem) -> Outcome:
        row = item.row
        teacher = make_teacher(item)
        try:
            result = await run_episode(row, teacher, settings, sampling_params)
        except EndpointFailure as e:
            # transient failures are retried by the next run; a request the endpoint refuses outright is a drop
            return Outcome(item.key, DROPPED if e.permanent else FAILED, f"api_error:{e.kind}", e.detail)
        req = Requirements(trial=True, no_violations=not allow_violations, max_length=limit.max_length)
        try:
            await check(row, result, req, limit.tokenizer)
        except Rejected as e:
            return Outcome(item.key, DROPPED, e.reason, e.detail)
        return Outcome(item.key, KEPT, sft=sft_row(row, result, teacher_name, item.variant), stats=trajectory_stats(result.record))

    return episode
