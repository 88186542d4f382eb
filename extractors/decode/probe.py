"""Probe a video in a child process with a time limit: the gate every decode goes through.

Demuxers can hang or crash on hostile containers (and decord can deadlock holding the GIL),
so the first look at a file happens in a separate Python process that is killed when its time
is up. The probe also reads every video packet's presentation time: that sorted list is the
source-frame index that the sampling plan and all backends share, and it makes timestamps
come from pts (correct for variable frame rate), never from ``index / fps``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from videxperts.extractors.base import (
    CorruptVideoError,
    DecodeTimeoutError,
    EmptyFileError,
    UnsupportedVideoError,
    VideoInputError,
)

DEFAULT_TIMEOUT_S = 60.0
# 8K UHD (7680x4320) is the largest frame accepted by default; bigger frames cost >100 MB each.
DEFAULT_MAX_PIXELS = 7680 * 4320
_CHILD = Path(__file__).with_name("_probe_child.py")


class MissingVideoError(VideoInputError):
    """The path does not exist (a manifest pointing at nothing)."""


@dataclass
class VideoInfo:
    """What a decode needs to know about one file; times are seconds from the first video frame.

    ``width``/``height`` are the displayed size (after ``rotation``, counter-clockwise degrees,
    is applied). ``frame_times`` holds the presentation time of every source frame in display
    order, relative to ``start_time`` (the first frame's pts); index i there is source frame i.
    """

    path: str
    duration: float
    fps: float
    frames: int
    width: int
    height: int
    has_video: bool
    has_audio: bool
    rotation: int = 0
    audio_sample_rate: int | None = None
    audio_offset: float = 0.0
    start_time: float = 0.0
    vfr: bool = False
    codec: str | None = None
    frame_times: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "frame_times"}
        return d


def _typed(path: str, kind: str, reason: str) -> VideoInputError:
    cls = {"missing": MissingVideoError, "unsupported": UnsupportedVideoError}.get(kind, CorruptVideoError)
    return cls(path, reason)


def _run_child(path: str, timeout_s: float, max_pixels: int | None) -> dict:
    cmd = [sys.executable, str(_CHILD), path, str(int(max_pixels or 0)), str(os.getpid())]
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as e:  # pragma: no cover - interpreter missing
        raise CorruptVideoError(path, f"cannot start the probe process ({e})") from e
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise DecodeTimeoutError(path, f"probe did not finish within {timeout_s:g} s") from None
    except BaseException:  # interrupted (SIGTERM, KeyboardInterrupt): the probe must not outlive us
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    if proc.returncode != 0 or not out:
        why = f"signal {-proc.returncode}" if proc.returncode < 0 else f"exit code {proc.returncode}"
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise CorruptVideoError(path, f"probe process crashed ({why}) {tail[0]}".strip())
    return json.loads(out)


def _is_vfr(times: np.ndarray) -> bool:
    if times.size < 3:
        return False
    gaps = np.diff(times)
    med = float(np.median(gaps))
    return med > 0 and float(np.max(np.abs(gaps - med))) > 0.5 * med


def probe(path: str | os.PathLike, timeout_s: float = DEFAULT_TIMEOUT_S,
          max_pixels: int | None = DEFAULT_MAX_PIXELS) -> VideoInfo:
    """Describe ``path`` or raise the typed :class:`VideoInputError` naming it, within ``timeout_s``.

    Raises EmptyFileError (zero bytes), MissingVideoError, CorruptVideoError (unreadable,
    truncated beyond use, first frame does not decode, probe crashed), UnsupportedVideoError
    (frame larger than ``max_pixels``; None disables the limit) and DecodeTimeoutError.
    An audio-only file is *not* an error here: ``has_video`` is False.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise MissingVideoError(p, "file not found")
    if os.path.isfile(p) and os.path.getsize(p) == 0:
        raise EmptyFileError(p, "file is empty (0 bytes)")
    r = _run_child(p, timeout_s, max_pixels)
    if not r.get("ok"):
        raise _typed(p, r.get("kind", "corrupt"), r.get("reason", "unreadable"))
    if not r["has_video"]:
        start = r.get("audio_start") or 0.0
        dur = r.get("audio_duration") or r.get("container_duration") or 0.0
        return VideoInfo(p, float(dur), 0.0, 0, 0, 0, False, True,
                         audio_sample_rate=r.get("audio_sample_rate"), start_time=float(start))
    pts = np.sort(np.asarray(r["pts"], np.float64))
    t0 = float(pts[0])
    times = pts - t0
    gaps = np.diff(times)
    step = float(np.median(gaps)) if gaps.size else 0.0
    last = float(r.get("last_duration") or 0.0) or step or (1.0 / r["header_fps"] if r.get("header_fps") else 0.0)
    duration = float(times[-1] + last)
    fps = float(r.get("header_fps") or 0.0) or (len(times) / duration if duration > 0 else 0.0)
    rot = int(r.get("rotation", 0))
    w, h = int(r["width"]), int(r["height"])
    if rot in (90, 270):
        w, h = h, w
    audio_offset = float(r.get("audio_start") or 0.0) - t0 if r["has_audio"] else 0.0
    return VideoInfo(p, duration, fps, int(times.size), w, h, True, bool(r["has_audio"]), rot,
                     r.get("audio_sample_rate"), audio_offset, t0, _is_vfr(times), r.get("codec"), times)
