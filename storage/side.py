"""Side data of an expert's rows: what OCR and ASR read (words with times) and where faces were.

The experts produce it next to their features (``ExpertOutput.extra``); it is small (a few
words or boxes per video), so it is kept as JSON in one parquet file per commit,
``side/<writer>-<seq>.parquet``, written just before that commit's record. A side row counts
only when the latest record of its (video, expert) is the commit that wrote it: a crash
between the two files leaves an orphan that nothing reads, and a re-extraction supersedes
the old words with the new ones.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SIDE_DIR = "side"
SCHEMA = pa.schema([("video_id", pa.string()), ("name", pa.string()), ("side", pa.string())])


def side_path(writer_token: str, seq: int) -> str:
    return f"{SIDE_DIR}/{writer_token}-{int(seq):08d}.parquet"


def _plain(value: Any) -> Any:
    """numpy values to JSON types (boxes come as arrays, times as numpy floats)."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"side data of type {type(value).__name__} is not JSON")


def encode(rows: list[tuple[str, str, dict[str, Any]]]) -> bytes:
    """One commit's side rows (video_id, expert, mapping) as parquet bytes."""
    table = pa.Table.from_pylist([{"video_id": v, "name": n, "side": json.dumps(s, default=_plain)} for v, n, s in rows],
                                 schema=SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def decode(data: bytes) -> dict[tuple[str, str], dict[str, Any]]:
    """(video_id, expert) -> side mapping of one side file."""
    table = pq.ParquetFile(io.BytesIO(data)).read()
    return {(v, n): json.loads(s) for v, n, s in zip(*(table.column(c).to_pylist() for c in SCHEMA.names),
                                                      strict=True)}
