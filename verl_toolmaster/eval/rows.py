"""Prepared RL rows, read through verl's dataset class (``data.custom_cls`` or ``RLHFDataset``) as in training.

Each row becomes the keyword arguments verl's agent-loop worker passes to ``AgentLoopBase.run`` (every
non-tensor column of the dataset item), plus what the report groups by: id, data source, split and
perturbation level.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..protocol.prompts import SYSTEM_PROMPT_OFF, SYSTEM_PROMPT_ON, system_prompt


class RowError(ValueError):
    """A row or a row selection is unusable (exit code 2); the message names the row."""


@dataclass
class Row:
    """One evaluation item."""

    id: str  # extra_info.task_id, else "<data_source>-<index>"; unique in a run, the resume key
    source: str  # data_source (selects the scorer)
    split: str  # extra_info.split ("all" when absent)
    level: str  # perturbation level: RoTBench's level tag, "perturbed(...)" for wrapper-perturbed rows, else "none"
    kwargs: dict[str, Any]  # the agent loop's run() keyword arguments

    @property
    def extra_info(self) -> dict[str, Any]:
        return self.kwargs.get("extra_info") or {}


def json_field(extra_info: dict[str, Any], key: str, row_id: str) -> Any:
    """``extra_info[key]`` decoded from its JSON string (prepared rows store nested values as JSON)."""
    value = extra_info.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as e:
            raise RowError(f"row {row_id}: extra_info[{key!r}] is not valid JSON: {e}") from None
    return value


def load_rows(paths: Iterable[Path], cfg: Any, tokenizer: Any) -> list[Row]:
    """All rows of the parquet files, in file order, as the training data path reads them.

    Each file gets its own dataset instance: verl's dataset concatenates files and refuses files whose prompt
    columns differ in layout (e.g. one with tool calls in the dialogue history and one without).
    """
    from .. import compat

    dataset_cls = compat.get_dataset_class(cfg.data)
    rows: list[Row] = []
    seen: dict[str, str] = {}
    for path in paths:
        name = str(Path(path).resolve())
        try:
            dataset = dataset_cls(data_files=[name], tokenizer=tokenizer, config=cfg.data, processor=None)
        except Exception as e:  # noqa: BLE001 - a dataset that does not load is a usage error naming the file
            raise RowError(f"cannot read {name} with {dataset_cls.__name__}: {type(e).__name__}: {e}") from None
        for i in range(len(dataset)):
            item = dict(dataset[i])
            item.pop("dummy_tensor", None)  # a tensor column: verl keeps it in the batch, not in the loop's kwargs
            row = _row(item, i)
            where = f"{name} item {i}"
            if row.id in seen:
                raise RowError(f"row id {row.id!r} occurs twice ({seen[row.id]} and {where}); row ids are the resume keys")
            seen[row.id] = where
            rows.append(row)
    return rows


def _row(item: dict[str, Any], position: int) -> Row:
    extra = item.get("extra_info") or {}
    source = item.get("data_source")
    if not isinstance(source, str) or not source:
        raise RowError(f"item {position}: no data_source column")
    if "raw_prompt" not in item:
        raise RowError(f"item {position}: no prompt messages")
    row_id = str(extra.get("task_id") or f"{source}-{extra.get('index', position)}")
    split = str(extra.get("split") or "all")
    return Row(id=row_id, source=source, split=split, level=perturbation_level(extra, row_id), kwargs=item)


def perturbation_level(extra: dict[str, Any], row_id: str) -> str:
    """RoTBench's own level ("clean", "slight", ...) from the row's tags; for rows the environment wrapper
    perturbs, "perturbed" plus the options that differ from the defaults; otherwise "none"."""
    tags = json_field(extra, "tags", row_id) or {}
    if isinstance(tags, dict) and isinstance(tags.get("level"), str):
        return tags["level"]
    env = json_field(extra, "env", row_id)
    perturb = env.get("perturb") if isinstance(env, dict) else None
    if not perturb:
        return "none"
    from ..envs.perturb import PerturbOptions

    defaults = {f: getattr(PerturbOptions, f) for f in PerturbOptions.__dataclass_fields__ if f != "seed"}
    changed = {k: v for k, v in sorted(perturb.items()) if k != "seed" and defaults.get(k, object()) != v}
    if not changed:
        return "perturbed"
    return "perturbed(" + ",".join(f"{k}={json.dumps(v)}" for k, v in changed.items()) + ")"


def select(rows: list[Row], ids: list[str] | None, limit: int | None) -> list[Row]:
    """``--ids`` (every id must exist) then ``--limit``, keeping data order."""
    if ids:
        wanted = set(ids)
        known = {r.id for r in rows}
        missing = [i for i in ids if i not in known]
        if missing:
            shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
            raise RowError(f"--ids: no row with id {shown} in the data")
        rows = [r for r in rows if r.id in wanted]
    return rows[:limit] if limit is not None else rows


def with_system_prompt(row: Row, mode: str, trial_mode: str) -> tuple[dict[str, Any], str]:
    """The run kwargs with the system message chosen by ``mode`` and where it came from.

    ``auto`` swaps a protocol default text (either mode's) for the active trial_mode's, so an A/B run with
    ``--trial-mode off`` does not tell the model about trials; any other system text stays. ``default`` always
    uses the protocol text; ``row`` never changes the prompt.
    """
    kwargs = dict(row.kwargs)
    messages = [dict(m) for m in kwargs["raw_prompt"]]
    first = messages[0] if messages else {}
    has_system = first.get("role") == "system"
    if mode == "row":
        return kwargs, "row"
    text = system_prompt(trial_mode)
    if mode == "auto":
        if not has_system or first.get("content") not in (SYSTEM_PROMPT_ON, SYSTEM_PROMPT_OFF):
            return kwargs, "row"
    if has_system:
        messages[0]["content"] = text
    else:
        messages.insert(0, {"role": "system", "content": text})
    kwargs["raw_prompt"] = messages
    return kwargs, f"protocol-{trial_mode}"
