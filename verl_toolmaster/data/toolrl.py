"""ToolRL (rlla): the SFT json (instruction/input/output) and the verl RL parquet (prompt + reward_model) ->
schema-env tasks scored by call matching (or by the gold text reply when no call is expected)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from .base import Adapter, InvalidRecord, RawRecord, files_in, iter_json_array, register_adapter
from .schema_tasks import schema_env_and_gold
from .task import Task
from .toolrl_format import FormatError, parse_history, parse_reply, parse_tools

SOURCE = "toolrl"


def iter_parquet(path: Path) -> Iterator[RawRecord]:
    """Rows of a parquet file as dicts; an unreadable file yields one error record."""
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for a corrupt file
        yield RawRecord(path, 0, None, error=InvalidRecord(path, None, "unreadable_parquet", f"{type(e).__name__}: {e}"))
        return
    for i, row in enumerate(table.to_pylist()):
        yield RawRecord(path, i, row)


def _from_verl_row(record: RawRecord) -> tuple[str, str, str, dict[str, Any]]:
    row = record.data
    prompt = row.get("prompt")
    if not isinstance(prompt, list) or len(prompt) < 2:
        raise record.invalid("bad_prompt", "'prompt' must be [system, user] chat messages")
    roles = [m.get("role") if isinstance(m, dict) else None for m in prompt]
    if roles[0] != "system" or roles[-1] != "user":
        raise record.invalid("bad_prompt", f"prompt roles are {roles}, expected system ... user")
    rm = row.get("reward_model")
    if not isinstance(rm, dict) or not isinstance(rm.get("ground_truth"), str):
        raise record.invalid("missing_field", "reward_model.ground_truth (the gold reply text) is missing")
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    return prompt[0]["content"], prompt[-1]["content"], rm["ground_truth"], {"source_split": extra.get("split"), "source_index": extra.get("index")}


@register_adapter("toolrl")
class ToolRLAdapter(Adapter):
    """Reads ``rlla_*.json`` SFT files and verl ``*.parquet`` files of the ToolRL release."""

    def records(self, path: Path | None) -> Iterator[RawRecord]:
        assert path is not None
        for f in files_in(path, ("*.json", "*.parquet"), "ToolRL .json/.parquet"):
            yield from (iter_parquet(f) if f.suffix == ".parquet" else iter_json_array(f))

    def convert(self, record: RawRecord) -> Task:
        if not isinstance(record.data, dict):
            raise record.invalid("not_an_object", f"expected a JSON object, got {type(record.data).__name__}")
        if record.file.suffix == ".parquet":
            system, user, reply, tags = _from_verl_row(record)
        else:
            missing = [k for k in ("instruction", "input", "output") if not isinstance(record.data.get(k), str)]
            if missing:
                raise record.invalid("missing_field", f"missing or non-string field(s) {missing}")
            system, user, reply, tags = record.data["instruction"], record.data["input"], record.data["output"], {}
        try:
            tools = parse_tools(system)
            context, query, trailing = parse_history(user)
            calls, response = parse_reply(reply)
        except FormatError as e:
            raise record.invalid("bad_prompt", str(e)) from None
        if not calls and response is None:
            raise record.invalid("no_gold", "the gold reply has neither <tool_call> nor <response>")
        tags = {k: v for k, v in tags.items() if v is not None}
        env, gold = schema_env_and_gold(record, tools, calls, tags)
        return Task(
            id=f"toolrl-{record.file.stem}-{record.row}",
            source=SOURCE,
            query=query,
            context=context,
            trailing=trailing,
            env=env,
            ground_truth={"calls": calls, "response": None if calls else response},
            gold=[[gold]] if calls else [[]],  # [[]]: the gold reply makes no call
            # A <response> beside calls is said before any observation, so only a call-free reply is a final answer.
            gold_answers=None if calls else [response],
            tags=tags,
        )
