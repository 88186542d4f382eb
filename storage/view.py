"""``videxperts.open_store(url)``: a read-only view of a feature store for notebooks and scripts.

Everything comes back as numpy arrays or pandas tables; the store's own classes (snapshots,
writers, records) stay behind :class:`~videxperts.storage.reader.StoreReader`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from videxperts.storage.reader import StoreReader
from videxperts.storage.store import FeatureStore


class StoreView:
    """Features, captions, status and provenance of one store (a consistent snapshot at open)."""

    def __init__(self, reader: StoreReader) -> None:
        self._reader = reader
        self._side_files: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}

    @classmethod
    def open(cls, url: str, storage_options: dict[str, Any] | None = None) -> StoreView:
        return cls(StoreReader(FeatureStore.open(str(url), mode="r", storage_options=storage_options)))

    @property
    def url(self) -> str:
        return str(self._reader.store.url)

    @property
    def video_ids(self) -> list[str]:
        return [str(v) for v in self._reader.video_ids]

    @property
    def experts(self) -> list[str]:
        return self._reader.experts

    @property
    def text_encoders(self) -> list[str]:
        return self._reader.text_encoders

    def features(self, expert: str, video_ids: Sequence[str] | None = None, mode: str = "seq",
                 max_len: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """``seq``: ([N, L, D], row mask [N, L]); ``mean``: ([N, D], available [N]) for ``video_ids`` (all)."""
        ids = list(video_ids) if video_ids is not None else self.video_ids
        return self._reader.load_expert(expert, ids, mode=mode, max_len=max_len)

    def timestamps(self, expert: str, video_ids: Sequence[str] | None = None,
                   max_len: int | None = None) -> np.ndarray:
        """Seconds of each feature row ``[N, L]``, aligned with ``features(mode="seq")``."""
        ids = list(video_ids) if video_ids is not None else self.video_ids
        return self._reader.load_timestamps(expert, ids, max_len=max_len)

    def captions(self, encoder: str, video_ids: Sequence[str] | None = None, max_captions: int | None = None,
                 max_tokens: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Caption token features ``[N, C, L, Dt]``, token mask ``[N, C, L]``, caption mask ``[N, C]``."""
        ids = list(video_ids) if video_ids is not None else self.video_ids
        return self._reader.load_text(encoder, ids, max_captions=max_captions, max_tokens=max_tokens)

    def status(self) -> pd.DataFrame:
        """One row per (video, expert): state, error, attempts, extractor version, rows."""
        return self._reader.store.status_table().to_pandas()

    def provenance(self, name: str) -> dict[str, Any]:
        """What produced an expert's (or text encoder's) features: backbone, weights, settings."""
        entry = self._reader.registry.get(("expert", name)) or self._reader.registry.get(("text", name))
        if entry is None:
            raise KeyError(f"{name!r} is neither an expert nor a text encoder of {self.url}")
        return dict(entry)

    def side(self, expert: str, video_id: str) -> dict[str, Any]:
        """What ``expert`` produced next to its features for ``video_id`` (``{}`` when nothing):
        OCR ``{"words", "times"}``, ASR ``{"words", "word_times"}``, face ``{"boxes"}``."""
        from videxperts.storage import side

        recs = self._reader.store.snapshot().records
        hit = recs[(recs["kind"] == "expert") & (recs["name"] == expert) & (recs["video_id"] == str(video_id))
                   & (recs["state"] == "done")]
        if hit.empty:
            if expert not in self.experts:
                raise KeyError(f"{expert!r} is not an expert of {self.url} (it has: {', '.join(self.experts)})")
            raise KeyError(f"video {video_id!r} has no {expert} features in {self.url}")
        row = hit.iloc[-1]
        path = side.side_path(str(row["writer_id"]), int(row["seq"]))
        if path not in self._side_files:
            root = self._reader.store._root
            self._side_files[path] = side.decode(root.read_bytes(path)) if root.exists(path) else {}
        return dict(self._side_files[path].get((str(video_id), expert), {}))

    def words(self, expert: str, video_id: str) -> pd.DataFrame:
        """The words OCR read or ASR heard in ``video_id``: columns ``word``, ``start``, ``end`` (seconds;
        OCR words get the time of the frame they were read on, ``end`` NaN)."""
        s = self.side(expert, video_id)
        words = list(s.get("words", []))
        if "word_times" in s:
            starts, ends = zip(*s["word_times"], strict=True) if words else ((), ())
        else:
            starts, ends = s.get("times", [np.nan] * len(words)), [np.nan] * len(words)
        return pd.DataFrame({"word": pd.Series(words, dtype=str), "start": np.asarray(starts, np.float64),
                             "end": np.asarray(ends, np.float64)})

    def boxes(self, video_id: str, expert: str = "face") -> pd.DataFrame:
        """Face boxes of ``video_id`` in frame pixels, one per feature row: ``t, x, y, w, h, prob``."""
        rows = self.side(expert, video_id).get("boxes", [])
        return pd.DataFrame(np.asarray(rows, np.float64).reshape(-1, 6), columns=["t", "x", "y", "w", "h", "prob"])

    def info(self) -> dict[str, Any]:
        """The summary that ``videxperts store info --json`` prints."""
        return self._reader.store.info()

    def __repr__(self) -> str:
        return f"StoreView({self.url!r}: {len(self.video_ids)} videos, experts {', '.join(self.experts)})"
