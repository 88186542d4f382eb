"""decode_windows / decode_video: one decode of a video serves every expert.

Flow per video: probe (child process, time limit) -> union sampling plan -> per window, decode
each needed source frame once (in small chunks, so native-resolution frames never pile up),
resize it once per distinct requested size, and hand each expert a view. Views of the same
size share one array: an expert whose samples are an evenly spaced subset of that array gets a
strided slice (no copy); only repeated or irregular picks are gathered into a new array.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from videxperts.extractors.base import DecodeNeeds, MediaView, NoVideoStreamError
from videxperts.extractors.decode.backends import BACKENDS, AudioReader, FrameBackend, PyAVBackend
from videxperts.extractors.decode.plan import UnionPlan, WindowPlan, build_plan
from videxperts.extractors.decode.probe import DEFAULT_MAX_PIXELS, DEFAULT_TIMEOUT_S, VideoInfo, probe

DEFAULT_WINDOW_SECONDS = 60.0
DECODE_CHUNK = 32  # native frames held at once while resizing


def resized_shape(width: int, height: int, size: int | None) -> tuple[int, int]:
    """(height, width) after scaling the shorter side to ``size`` with the aspect ratio kept."""
    if size is None:
        return height, width
    if height <= width:
        return size, max(1, round(width * size / height))
    return max(1, round(height * size / width)), size


def _resize(frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    if frame.shape[:2] == shape:
        return frame
    h, w = shape
    shrink = h * w < frame.shape[0] * frame.shape[1]
    return cv2.resize(frame, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _rotate(frames: np.ndarray, rotation: int) -> np.ndarray:
    """Turn stored frames upright; ``rotation`` is counter-clockwise degrees (display matrix)."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(frames, k=k, axes=(1, 2))) if k else frames


def _pick(array: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """``array[pos]`` as a view when ``pos`` is an evenly spaced increasing run, else a gather."""
    if pos.size == 0:
        return array[:0]
    if pos.size == 1:
        return array[pos[0]: pos[0] + 1]
    step = int(pos[1] - pos[0])
    if step > 0 and np.array_equal(pos, pos[0] + step * np.arange(pos.size)):
        return array[pos[0]: pos[-1] + 1: step]
    return array[pos]


DECORD_UNSUPPORTED_CODECS = frozenset({"gif"})


def open_backend(backend: str, info: VideoInfo, threads: int, deadline: float | None) -> FrameBackend:
    """Instantiate ``backend``; decord cannot turn rotated video upright (upstream bug) nor open
    an animated GIF ("broken metadata": it has no frame count), so PyAV does both. One-frame
    media (a still image: jpg, png, webp) also go to PyAV: decord cannot measure them and
    torchcodec finds no frame in a JPEG."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown decode backend {backend!r}; choose from {sorted(BACKENDS)}")
    if info.frames == 1 and backend != "pyav":
        return PyAVBackend(info, threads, deadline)
    if backend == "decord" and (info.rotation or info.codec in DECORD_UNSUPPORTED_CODECS):
        return PyAVBackend(info, threads, deadline)
    return BACKENDS[backend](info, threads, deadline)


class _WindowDecoder:
    """Decodes the frames of successive windows, keeping only the overlap between them."""

    def __init__(self, info: VideoInfo, plan: UnionPlan, backend: FrameBackend) -> None:
        self.info, self.plan, self.backend = info, plan, backend
        self.shapes = {s: resized_shape(info.width, info.height, s) for s in plan.sizes}
        self.cache: dict[int | None, dict[int, np.ndarray]] = {s: {} for s in plan.sizes}
        self.decoded = 0  # source frames decoded so far (each index once)

    def frames(self, w: WindowPlan) -> dict[int | None, tuple[np.ndarray, np.ndarray]]:
        """size -> (sorted source indices, frames at that size) for this window."""
        need: dict[int | None, np.ndarray] = {}
        for name, slots in w.slots.items():
            fp = self.plan.frames[name]
            s = fp.needs.size
            need[s] = np.union1d(need.get(s, np.zeros(0, np.int64)), fp.source[slots])
        out = {s: np.empty((idx.size, *self.shapes[s], 3), np.uint8) for s, idx in need.items()}
        todo: set[int] = set()
        for s, idx in need.items():
            cached = self.cache[s]
            for row, i in enumerate(idx.tolist()):
                if i in cached:
                    out[s][row] = cached[i]
                else:
                    todo.add(i)
        order = np.array(sorted(todo), np.int64)
        rows = {s: {int(i): r for r, i in enumerate(idx)} for s, idx in need.items()}
        for lo in range(0, order.size, DECODE_CHUNK):
            chunk = order[lo: lo + DECODE_CHUNK]
            native = self.backend.get(chunk)
            if self.info.rotation and not self.backend.applies_rotation:
                native = _rotate(native, self.info.rotation)
            self.decoded += chunk.size
            for j, i in enumerate(chunk.tolist()):
                for s, r in rows.items():
                    if i in r and i not in self.cache[s]:
                        out[s][r[i]] = _resize(native[j], self.shapes[s])
        self._keep_overlap(w, need, out)
        return {s: (need[s], out[s]) for s in need}

    def _keep_overlap(self, w: WindowPlan, need: dict, out: dict) -> None:
        nxt = self.plan.windows[w.index + 1] if w.index + 1 < len(self.plan.windows) else None
        start = int(nxt.source[0]) if nxt is not None and nxt.source.size else None
        for s in self.cache:
            self.cache[s] = {}
            if start is None or s not in need:
                continue
            for r in np.nonzero(need[s] >= start)[0]:
                self.cache[s][int(need[s][r])] = out[s][r].copy()


def decode_windows(
    path: str | os.PathLike,
    needs: dict[str, DecodeNeeds],
    backend: str = "decord",
    video_id: str | None = None,
    window_seconds: float | None = DEFAULT_WINDOW_SECONDS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    threads: int = 1,
    stats: dict | None = None,
    isolate: bool = False,
) -> Iterator[dict[str, MediaView]]:
    """Yield, window by window, ``{expert: MediaView}`` from a single decode of ``path``.

    ``isolate=True`` runs the whole decode in a child process (see ``isolate.py``): a decoder
    that deadlocks or crashes then costs one DecodeTimeoutError / CorruptVideoError, not the worker.

    ``timeout_s`` bounds the probe and each window's decode. ``stats``, when given, is filled
    with ``decoded_frames`` (source frames decoded, each once), ``windows`` and ``info``. Raises the typed
    ``VideoInputError`` subclasses (file named in the message); an audio-only file is fine
    when no expert needs frames, and a file without audio gives ``audio=None`` views.
    """
    p = os.fspath(path)
    vid = video_id if video_id is not None else Path(p).stem
    if isolate:
        from videxperts.extractors.decode.isolate import decode_windows_isolated

        yield from decode_windows_isolated(p, timeout_s, needs=needs, backend=backend, video_id=vid,
                                           window_seconds=window_seconds, max_pixels=max_pixels,
                                           threads=threads)
        return
    info = probe(p, timeout_s=timeout_s, max_pixels=max_pixels)
    wants_frames = any(d.frames for d in needs.values())
    if wants_frames and not info.has_video:
        raise NoVideoStreamError(p, "no video stream, but frames are needed")
    plan = build_plan(needs, info.duration, info.frame_times if wants_frames else None, window_seconds)
    frames_dec = None
    audio = None
    try:
        if wants_frames:
            frames_dec = _WindowDecoder(info, plan, open_backend(backend, info, threads, None))
        if plan.audio and info.has_audio:
            audio = AudioReader(p, plan.audio_rates, info.audio_offset)
        for w in plan.windows:
            deadline = time.monotonic() + timeout_s
            if frames_dec is not None:
                frames_dec.backend.deadline = deadline
            if audio is not None:
                audio._check = frames_dec.backend._check_time if frames_dec else _deadline_check(p, deadline)
            views = _views(vid, info, plan, w, frames_dec, audio, needs)
            if stats is not None:
                stats.update(info=info, windows=w.index + 1,
                             decoded_frames=frames_dec.decoded if frames_dec is not None else 0,
                             backend=type(frames_dec.backend).name if frames_dec is not None else None)
            yield views
    finally:
        if frames_dec is not None:
            frames_dec.backend.close()
        if audio is not None:
            audio.close()


def _deadline_check(path: str, deadline: float):
    from videxperts.extractors.base import DecodeTimeoutError

    def check() -> None:
        if time.monotonic() > deadline:
            raise DecodeTimeoutError(path, "decoding exceeded its time budget")

    return check


def _views(vid: str, info: VideoInfo, plan: UnionPlan, w: WindowPlan, frames_dec: _WindowDecoder | None,
           audio: AudioReader | None, needs: dict[str, DecodeNeeds]) -> dict[str, MediaView]:
    by_size = frames_dec.frames(w) if frames_dec is not None else {}
    audio_by_rate = _take_audio(plan, w, audio) if audio is not None else {}
    views: dict[str, MediaView] = {}
    for name, d in needs.items():
        view = MediaView(video_id=vid, duration=info.duration, window_index=w.index, is_last_window=w.is_last)
        if d.frames:
            fp = plan.frames[name]
            src = fp.source[w.slots[name]]
            idx, arr = by_size[fp.needs.size] if src.size else (np.zeros(0, np.int64), None)
            if arr is None:
                h, wd = frames_dec.shapes[fp.needs.size]
                view.frames = np.zeros((0, h, wd, 3), np.uint8)
            else:
                view.frames = _pick(arr, np.searchsorted(idx, src))
            view.frame_times = info.frame_times[src]
        if d.audio:
            view.sample_rate = d.audio.sample_rate
            view.audio_start = w.audio_start[name]
            if audio is not None:
                base, block = audio_by_rate[d.audio.sample_rate]
                lo, hi = w.audio[name]
                view.audio = block[lo - base: None if hi is None else hi - base]
        views[name] = view
    return views


def _take_audio(plan: UnionPlan, w: WindowPlan, audio: AudioReader) -> dict[int, tuple[int, np.ndarray]]:
    """Per rate, one block covering every audio expert's range in this window (experts slice it)."""
    out: dict[int, tuple[int, np.ndarray]] = {}
    nxt = plan.windows[w.index + 1] if w.index + 1 < len(plan.windows) else None
    for rate in sorted(plan.audio_rates):
        names = [n for n, a in plan.audio.items() if a.sample_rate == rate]
        lo = min(w.audio[n][0] for n in names)
        his = [w.audio[n][1] for n in names]
        hi = None if any(h is None for h in his) else max(his)
        block = audio.take(rate, lo, hi).copy()  # the window's own array, independent of the buffer
        out[rate] = (lo, block)
        audio.release(rate, min(nxt.audio[n][0] for n in names) if nxt is not None else None)
    return out


def decode_video(
    path: str | os.PathLike,
    needs: dict[str, DecodeNeeds],
    backend: str = "decord",
    video_id: str | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    threads: int = 1,
    stats: dict | None = None,
    isolate: bool = False,
) -> dict[str, MediaView]:
    """The whole video as one window (short clips); same views as concatenating the windows."""
    (views,) = list(decode_windows(path, needs, backend, video_id, None, timeout_s, max_pixels, threads,
                                   stats, isolate))
    return views
