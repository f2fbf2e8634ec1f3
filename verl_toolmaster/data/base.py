"""Adapter interface: a benchmark's own files -> raw records -> :class:`~verl_toolmaster.data.task.Task` records.

Reading and converting are separate steps so that one bad record can be reported (file, row, problem) and
either stop the run or be skipped and counted, while the rest of the file converts.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar

from .task import Task


class InvalidRecord(Exception):
    """A record (or a whole file) that cannot be converted. ``reason`` is a short key used to count skips."""

    def __init__(self, file: str | Path, row: int | str | None, reason: str, detail: str):
        self.file = str(file)
        self.row = row  # 0-based record index in the file, an id, or None when the whole file is unusable
        self.reason = reason
        self.detail = detail
        super().__init__(self.message())

    def message(self) -> str:
        where = self.file if self.row is None else f"{self.file}, row {self.row}"
        return f"{where}: {self.reason}: {self.detail}"


class InputError(Exception):
    """The input path cannot be read as this benchmark (missing files, unknown layout or category)."""


class SkipRecord(InvalidRecord):
    """A well-formed record this adapter deliberately does not convert (e.g. the benchmark lists two different
    tools under one name). Always skipped and counted, never fatal: it is a property of the data, not a defect
    of the file."""


@dataclass
class RawRecord:
    """One benchmark record as read from disk, before conversion."""

    file: Path  # the file it came from
    row: int  # 0-based index of the record in that file
    data: Any  # the decoded record (plus whatever side data the adapter joined to it)
    error: InvalidRecord | None = None  # set when the record could not even be decoded

    def invalid(self, reason: str, detail: str) -> InvalidRecord:
        return InvalidRecord(self.file, self.row, reason, detail)

    def skip(self, reason: str, detail: str) -> SkipRecord:
        return SkipRecord(self.file, self.row, reason, detail)


class Adapter(ABC):
    """One benchmark. ``records(path)`` reads, ``convert(record)`` builds a Task or raises InvalidRecord."""

    name: ClassVar[str] = ""  # registry key and CLI --dataset value
    input_optional: ClassVar[bool] = False  # True when the adapter has a default input (e.g. installed package data)

    def __init__(self, **options: Any):
        unknown = set(options) - set(self.option_names())
        if unknown:
            raise ValueError(f"dataset {self.name!r} does not take option(s) {sorted(unknown)}")
        self.options = options

    @classmethod
    def option_names(cls) -> tuple[str, ...]:
        """Adapter-specific options accepted by the constructor (forwarded from the CLI)."""
        return ()

    @abstractmethod
    def records(self, path: Path | None) -> Iterator[RawRecord]:
        """Yield the raw records of ``path`` (a file or the benchmark's folder as shipped)."""

    @abstractmethod
    def convert(self, record: RawRecord) -> Task:
        """Turn one raw record into a Task; raise :class:`InvalidRecord` (malformed) or :class:`SkipRecord`
        (well-formed but not convertible) naming the problem."""


ADAPTER_REGISTRY: dict[str, type[Adapter]] = {}


def register_adapter(name: str) -> Callable[[type[Adapter]], type[Adapter]]:
    """Class decorator adding a dataset adapter to the registry (idempotent for the same class)."""

    def deco(cls: type[Adapter]) -> type[Adapter]:
        prev = ADAPTER_REGISTRY.get(name)
        if prev is not None and prev.__qualname__ != cls.__qualname__:
            raise ValueError(f"dataset adapter {name!r} is already registered to {prev.__module__}.{prev.__qualname__}")
        cls.name = name
        ADAPTER_REGISTRY[name] = cls
        return cls

    return deco


# ---- small readers shared by adapters -------------------------------------------------------------------


def read_json_file(path: Path) -> Any:
    """Decode a whole-file JSON document; a decode error becomes an InvalidRecord for the file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise InvalidRecord(path, None, "invalid_json", f"line {e.lineno} column {e.colno}: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise InvalidRecord(path, None, "invalid_encoding", str(e)) from None


def iter_json_array(path: Path) -> Iterator[RawRecord]:
    """Records of a file holding one JSON array. An undecodable file yields a single error record."""
    try:
        data = read_json_file(path)
    except InvalidRecord as e:
        yield RawRecord(path, 0, None, error=InvalidRecord(path, None, e.reason, e.detail))
        return
    if not isinstance(data, list):
        yield RawRecord(path, 0, None, error=InvalidRecord(path, None, "not_a_list", f"expected a JSON array of records, got {type(data).__name__}"))
        return
    for i, item in enumerate(data):
        yield RawRecord(path, i, item)


def iter_jsonl(path: Path) -> Iterator[RawRecord]:
    """Records of a JSON-lines file (blank lines ignored); a line that does not decode is an error record."""
    with open(path, encoding="utf-8", errors="strict") as f:
        row = 0
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield RawRecord(path, row, json.loads(line))
            except json.JSONDecodeError as e:
                yield RawRecord(path, row, None, error=InvalidRecord(path, row, "invalid_json", f"line {lineno}: {e.msg} (column {e.colno})"))
            row += 1


def require_keys(record: RawRecord, keys: tuple[str, ...]) -> dict[str, Any]:
    """The record's dict, after checking that ``keys`` are present."""
    data = record.data
    if not isinstance(data, dict):
        raise record.invalid("not_an_object", f"expected a JSON object, got {type(data).__name__}")
    missing = [k for k in keys if k not in data]
    if missing:
        raise record.invalid("missing_field", f"missing field(s) {missing}")
    return data


def files_in(path: Path, patterns: tuple[str, ...], what: str) -> list[Path]:
    """``path`` itself when it is a file, else the files matching ``patterns`` below it (sorted)."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise InputError(f"{path}: no such file or directory")
    found = sorted({p for pat in patterns for p in path.glob(pat) if p.is_file()})
    if not found:
        raise InputError(f"{path}: no {what} files ({', '.join(patterns)}) found")
    return found
