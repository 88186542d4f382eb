"""The Ray actors of an extraction job: decoders, experts, text encoders and store writers.

Each actor catches per-item exceptions and returns them as small status records, so that a
bad video becomes a record and never an actor failure; only a process that really dies (OOM,
segfault, ``ray.kill``) surfaces as ``RayActorError`` in the driver, which is how crashes are
told apart from errors. Every status carries the node id and busy seconds for the summary.

The classes are plain; the driver wraps them with ``ray.remote`` and the resources it chose.
"""

from __future__ import annotations

import os
import time
import traceback
from typing import Any

import numpy as np

from videxperts.pipelines.extract_balance import CpuMeter


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()


def _error_status(exc: BaseException, t0: float, node: str, **extra: Any) -> dict[str, Any]:
    from videxperts.extractors.base import VideoInputError

    return {
        "ok": False,
        "input_error": isinstance(exc, VideoInputError),
        "error_class": type(exc).__name__,
        "message": (str(exc) or repr(exc))[:2000],
        "trace": traceback.format_exc(limit=4)[-2000:],
        "seconds": time.monotonic() - t0,
        "node_id": node,
        "pid": os.getpid(),
        **extra,
    }


class DecodeWorker:
    """Decodes each video once for the union of the requested experts' needs.

    ``decode`` is called with ``num_returns = 1 + len(experts)``: a small status first, then one
    object per expert holding that expert's windows (``list[MediaView]``), so every expert
    fetches only its own view from the object store and nothing is decoded twice.
    """

    def __init__(self, backend: str, options: dict[str, Any]) -> None:
        self.backend = backend
        self.options = {k: v for k, v in options.items() if v is not None}  # window_seconds, timeout_s, max_pixels
        self.node = _node_id()
        self.meter = CpuMeter("decode")

    def cpu_report(self) -> dict[str, Any]:
        return self.meter.report()

    def ping(self) -> str:
        return self.node

    def decode(self, video_id: str, path: str, needs: dict[str, Any], experts: list[str]) -> tuple[Any, ...]:
        from videxperts.extractors.decode import decode_windows

        t0, c0 = time.monotonic(), time.process_time()
        views: dict[str, list[Any]] = {e: [] for e in experts}
        kwargs: dict[str, Any] = {"backend": self.backend, "video_id": video_id, **self.options}
        try:
            for window in decode_windows(path, {e: needs[e] for e in experts}, **kwargs):
                for e in experts:
                    if e in window:
                        views[e].append(window[e])
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            status = _error_status(exc, t0, self.node, video_id=video_id)
            return (status, *([None] * len(experts)))
        cpu_s = time.process_time() - c0
        self.meter.calls += cpu_s
        first = next((v[0] for v in views.values() if v), None)
        status = {"ok": True, "seconds": time.monotonic() - t0, "cpu_s": cpu_s,
                  "node_id": self.node, "pid": os.getpid(), "video_id": video_id,
                  "windows": {e: len(v) for e, v in views.items()},
                  "video_s": float(first.duration) if first is not None else None}
        return (status, *(views[e] for e in experts))


class ExpertWorker:
    """Loads one expert once (``Expert.load``) and runs it on one video's windows per call.

    ``run`` is called with ``num_returns=2``: the status (small, the driver reads it) and the
    payload (features + timestamps, handed by reference straight to a store writer).
    """

    def __init__(self, name: str, profile: dict[str, Any], batch_size: int, threads: int) -> None:
        import ray

        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:  # pragma: no cover - torch is a dependency
            pass
        from videxperts.extractors.registry import build_expert

        self.name = name
        self.expert = build_expert(name, profile)
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        self.expert.load(self.device)
        if getattr(self.expert, "threads", None) is None:  # the profile did not pin them: the share decides
            torch.set_num_threads(max(1, threads))
        if hasattr(self.expert, "batch_size"):
            self.expert.batch_size = max(1, batch_size)  # the measured (or --batch-size) units per forward
        self.batch_size = max(1, batch_size)
        self.node = _node_id()
        self.meter = CpuMeter(name)
        if hasattr(self.expert, "forward_features"):
            self.expert.forward_features = self.meter.timed_model(self.expert.forward_features)

    def cpu_report(self) -> dict[str, Any]:
        return self.meter.report()

    def calibrate(self, candidates: tuple[int, ...] | None = None) -> dict[str, Any] | None:
        """Cost per unit at each candidate batch size on this actor's device (None: not a torch expert)."""
        from videxperts.pipelines.extract_balance import calibratable, measure_expert

        if not calibratable(self.expert):
            return None
        c0 = time.process_time()
        out = measure_expert(self.expert, str(getattr(self.expert, "device", self.device)), candidates)
        return out | {"cpu_s": time.process_time() - c0}

    def ping(self) -> str:
        return self.node

    def info(self) -> dict[str, Any]:
        """What the driver records in the store (dim, provenance) and the run (device, node)."""
        return {"name": self.name, "dim": int(self.expert.dim), "provenance": self.expert.provenance(),
                "version": str(getattr(self.expert, "version", "1")), "device": self.device,
                "node_id": self.node, "pid": os.getpid()}

    def run(self, video_id: str, views: list[Any]) -> tuple[dict[str, Any], Any]:
        from videxperts.extractors.base import ExpertOutput

        t0, c0 = time.monotonic(), time.process_time()
        try:
            parts = []
            for i in range(0, len(views), self.batch_size):
                parts.extend(self.expert.extract(views[i:i + self.batch_size]))
            out = ExpertOutput.concat(parts, int(self.expert.dim))
            feats = np.ascontiguousarray(out.features, dtype=np.float32)
            if feats.shape[1] != int(self.expert.dim):
                raise ValueError(f"{self.name} returned dim {feats.shape[1]}, expected {self.expert.dim}")
            if not np.isfinite(feats).all():
                raise ValueError(f"{self.name} produced non-finite features for {video_id}")
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record
            self.meter.calls += time.process_time() - c0
            return _error_status(exc, t0, self.node, video_id=video_id, expert=self.name), None
        cpu_s = time.process_time() - c0
        self.meter.calls += cpu_s
        status = {"ok": True, "seconds": time.monotonic() - t0, "cpu_s": cpu_s,
                  "node_id": self.node, "pid": os.getpid(), "video_id": video_id, "expert": self.name,
                  "rows": int(feats.shape[0]), "video_s": float(views[0].duration) if views else None}
        payload = {"features": feats, "timestamps": np.asarray(out.timestamps, dtype=np.float64)}
        if out.extra:  # OCR/ASR words with times, face boxes: kept in the store (storage/side.py)
            payload["side"] = out.extra
        return status, payload


class TextWorker:
    """Encodes captions with one text encoder (token-level features ``[L, D]`` per caption)."""

    def __init__(self, name: str, cfg: dict[str, Any], threads: int) -> None:
        try:
            import torch

            torch.set_num_threads(max(1, threads))
        except ImportError:  # pragma: no cover
            pass
        from videxperts.extractors.text import build_text_encoder

        self.name = name
        self.encoder = build_text_encoder(name, **cfg)
        self.node = _node_id()

    def ping(self) -> str:
        return self.node

    def info(self) -> dict[str, Any]:
        prov = self.encoder.provenance() if hasattr(self.encoder, "provenance") else {"backbone": self.name}
        return {"name": self.name, "dim": int(self.encoder.dim), "provenance": prov, "node_id": self.node}

    def encode(self, items: list[tuple[str, int, str]]) -> tuple[dict[str, Any], Any]:
        """``items``: (video_id, caption_idx, text) → payload [(video_id, caption_idx, tokens)]."""
        t0 = time.monotonic()
        try:
            tokens = self.encoder.encode_tokens([t for _, _, t in items])
            payload = [(v, i, np.asarray(tok, dtype=np.float32)) for (v, i, _), tok in zip(items, tokens, strict=True)]
        except Exception as exc:  # noqa: BLE001
            return _error_status(exc, t0, self.node, encoder=self.name), None
        return {"ok": True, "seconds": time.monotonic() - t0, "node_id": self.node, "n": len(items)}, payload


class WriterWorker:
    """Owns one store writer (its own writer id, so its own chunks) and decides when to commit.

    Writes are buffered by the store and become visible at ``commit`` (every ``commit_every``
    items or ``commit_seconds``). Every write carries the driver's sequence number; each reply
    lists the sequence numbers committed so far by this incarnation, so the driver keeps the
    payload of anything uncommitted and can resend it if this actor dies (a restarted writer
    starts with an empty buffer, and the store never exposes half-written videos).
    """

    def __init__(self, store_url: str, writer_id: str, commit_every: int, commit_seconds: float) -> None:
        from videxperts.storage.store import FeatureStore

        self.store = FeatureStore.open(store_url, mode="a")
        self.writer = self.store.writer(writer_id)
        self.commit_every = max(1, commit_every)
        self.commit_seconds = commit_seconds
        self.buffered: list[int] = []
        self.keys: dict[tuple[str, str], int] = {}
        self.last_commit = time.monotonic()
        self.node = _node_id()
        self.busy = 0.0
        self.error: str | None = None  # the first failed commit: the store cannot take writes
        self.meter = CpuMeter("writer")

    def cpu_report(self) -> dict[str, Any]:
        return self.meter.report()

    def ping(self) -> str:
        return self.node

    def _maybe_commit(self, force: bool = False) -> list[int]:
        due = len(self.buffered) >= self.commit_every or time.monotonic() - self.last_commit >= self.commit_seconds
        if self.error or not self.buffered or not (force or due):
            return []
        try:
            self.writer.commit()
        except Exception as exc:  # noqa: BLE001 - reported to the driver, which ends the job
            self.error = _store_error(exc)
            return []
        done, self.buffered, self.keys = self.buffered, [], {}
        self.last_commit = time.monotonic()
        return done

    def _reply(self, committed: list[int], t0: float) -> dict[str, Any]:
        out = {"committed": committed, "seconds": time.monotonic() - t0, "node_id": self.node}
        if self.error:
            out["store_error"] = self.error
        return out

    def write(self, seq: int, video_id: str, expert: str, payload: dict[str, Any]) -> dict[str, Any]:
        t0 = time.monotonic()
        c0 = time.process_time()
        if self.error:  # a failed commit: this writer takes nothing more (the driver ends the job)
            return self._reply([], t0)
        if (video_id, expert) not in self.keys:  # a resend of a still-buffered item is a no-op
            try:
                self.writer.write(video_id, expert, payload["features"], payload["timestamps"], payload.get("side"))
            except Exception as exc:  # noqa: BLE001 - the store refused these features: a record
                return _error_status(exc, t0, self.node, video_id=video_id, expert=expert) | {"committed": []}
            self.keys[(video_id, expert)] = seq
        self.buffered.append(seq)
        committed = self._maybe_commit()
        self.busy += time.monotonic() - t0
        self.meter.calls += time.process_time() - c0
        return self._reply(committed, t0)

    def write_text(self, seq: int, encoder: str, payload: list[tuple[str, int, np.ndarray]]) -> dict[str, Any]:
        t0 = time.monotonic()
        if self.error:
            return self._reply([], t0)
        try:
            for video_id, idx, tokens in payload:
                self.writer.write_text(video_id, idx, encoder, tokens)
        except Exception as exc:  # noqa: BLE001
            self.error = _store_error(exc)
            return self._reply([], t0)
        self.buffered.append(seq)
        return self._reply(self._maybe_commit(), t0)

    def flush(self) -> dict[str, Any]:
        t0 = time.monotonic()
        return self._reply(self._maybe_commit(force=True), t0)

    def close(self) -> dict[str, Any]:
        t0 = time.monotonic()
        committed = self._maybe_commit(force=True)
        if not self.error:
            try:
                self.writer.close()
            except Exception as exc:  # noqa: BLE001
                self.error = _store_error(exc)
        return self._reply(committed, t0)


def _store_error(exc: BaseException) -> str:
    """One line for the driver: the store's own message (it names the store and the OS error)."""
    from videxperts.errors import first_line

    return first_line(exc, 600)
