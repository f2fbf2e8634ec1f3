"""Small helpers shared by the data tests."""

from __future__ import annotations

from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    return pq.read_table(str(path)).to_pylist()
