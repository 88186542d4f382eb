"""Commit records: the immutable parquet files that make buffered rows visible.

One record row per (kind, name, video_id, caption_idx) entry of a commit. ``kind`` is
``expert`` (``name`` = expert, ``caption_idx`` = -1) or ``text`` (``name`` = text encoder).
A ``done`` row points at ``row_count`` rows starting at ``row_start`` of the arrays under
``source`` (a shard group or a compacted base). The latest row per key wins, ordered by
``(commit_ts, writer_id, seq, pos)``; rows whose ``epoch`` is not the expert's current epoch
(the expert was dropped since) are ignored.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

SCHEMA = pa.schema(
    [
        ("kind", pa.string()),
        ("name", pa.string()),
        ("video_id", pa.string()),
        ("caption_idx", pa.int32()),
        ("state", pa.string()),
        ("error_class", pa.string()),
        ("message", pa.string()),
        ("attempts", pa.int32()),
        ("epoch", pa.string()),
        ("extractor_version", pa.string()),
        ("source", pa.string()),
        ("row_start", pa.int64()),
        ("row_count", pa.int64()),
        ("commit_ts", pa.int64()),
        ("writer_id", pa.string()),
        ("seq", pa.int64()),
        ("pos", pa.int32()),
    ]
)
KEY = ["kind", "name", "video_id", "caption_idx"]
STATES = ("done", "failed", "quarantined")


def to_parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table.cast(SCHEMA), sink, compression="zstd")
    return sink.getvalue()


def from_parquet_bytes(data: bytes) -> pa.Table:
    # ParquetFile.read without threads: read_table's dataset layer and thread pool cost
    # several times more than decoding for files this small
    table = pq.ParquetFile(io.BytesIO(data)).read(use_threads=False)
    return table if table.schema.equals(SCHEMA) else table.cast(SCHEMA)


def empty_table() -> pa.Table:
    return SCHEMA.empty_table()


def latest(tables: list[pa.Table], epochs: dict[tuple[str, str], str]) -> pd.DataFrame:
    """Concatenate record tables and keep, per key, the latest row of a current epoch.

    ``epochs`` maps (kind, name) to the current epoch; rows of other epochs or of names
    not registered are dropped. Vectorised: one concat, one lexsort, one drop_duplicates.
    """
    tables = [t for t in tables if t.num_rows]
    if not tables:
        return empty_table().to_pandas()
    df = pa.concat_tables(tables).to_pandas()
    if epochs:
        reg = pd.DataFrame(
            [(k, n, e) for (k, n), e in epochs.items()], columns=["kind", "name", "_epoch"]
        )
        df = df.merge(reg, on=["kind", "name"], how="inner")
        df = df[df["epoch"] == df["_epoch"]].drop(columns="_epoch")
    else:
        df = df.iloc[0:0]
    if len(tables) > 1 or df.duplicated(KEY).any():
        writer = pd.Categorical(df["writer_id"]).codes
        order = np.lexsort((df["pos"].to_numpy(), df["seq"].to_numpy(), writer, df["commit_ts"].to_numpy()))
        df = df.iloc[order].drop_duplicates(KEY, keep="last")
    return df.reset_index(drop=True)
