"""Frame backends (decord, torchcodec, PyAV) and the streaming audio reader.

A frame backend answers one question: "give me source frames ``indices`` (sorted, unique) as
uint8 RGB ``[n, H, W, 3]``". Indices are positions in the probe's pts-sorted frame list, which
is the display order all three libraries use, so the same index gives the same frame from each.
Rotation is applied by the caller (see ``applies_rotation``); resizing is the caller's too, so
the pixels handed over are exactly what the codec produced, converted to RGB.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from videxperts.extractors.base import CorruptVideoError, DecodeTimeoutError
from videxperts.extractors.decode.plan import nearest_frames
from videxperts.extractors.decode.probe import VideoInfo


class FrameBackend:
    """Random access to source frames by index; one instance per open file."""

    name = "base"
    applies_rotation = False  # True when the library already turns frames upright

    def __init__(self, info: VideoInfo, threads: int = 1, deadline: float | None = None) -> None:
        self.info = info
        self.path = info.path
        self.threads = threads
        self.deadline = deadline

    def _check_time(self) -> None:
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DecodeTimeoutError(self.path, "decoding exceeded its time budget")

    def get(self, indices: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file."""


class DecordBackend(FrameBackend):
    """decord ``VideoReader.get_batch`` on exactly the needed indices (the design card's default)."""

    name = "decord"

    def __init__(self, info: VideoInfo, threads: int = 1, deadline: float | None = None) -> None:
        super().__init__(info, threads, deadline)
        import decord

        try:
            self._vr = decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=threads)
        except decord.DECORDError as e:
            raise CorruptVideoError(self.path, f"decord cannot open it ({str(e).splitlines()[0][:200]})") from e
        n = len(self._vr)
        self._fallback: FrameBackend | None = None
        self._map: np.ndarray | None = None
        if n < info.frames:
            # decord's index disagrees with the container's packets: map by presentation time.
            own = np.asarray(self._vr.get_frame_timestamp(np.arange(n)))[:, 0] - info.start_time
            self._map = nearest_frames(own, info.frame_times)

    def get(self, indices: np.ndarray) -> np.ndarray:
        self._check_time()
        if self._fallback is not None:
            self._fallback.deadline = self.deadline  # the reader moves the deadline per window
            return self._fallback.get(indices)
        idx = indices if self._map is None else self._map[indices]
        import decord

        try:
            return self._vr.get_batch(idx.tolist()).asnumpy()
        except decord.DECORDError as e:
            if "from_size == to_size" not in str(e):
                raise CorruptVideoError(self.path, f"decord failed ({str(e).splitlines()[0][:200]})") from e
        # decord mis-sizes its output for some frame geometries (e.g. 1x1, rotated): PyAV decodes.
        self._fallback = PyAVBackend(self.info, self.threads, self.deadline)
        return self._fallback.get(indices)

    def close(self) -> None:
        del self._vr
        if self._fallback is not None:
            self._fallback.close()


class TorchcodecBackend(FrameBackend):
    """torchcodec ``VideoDecoder.get_frames_at`` (exact seek mode); it turns rotated frames upright."""

    name = "torchcodec"
    applies_rotation = True

    def __init__(self, info: VideoInfo, threads: int = 1, deadline: float | None = None) -> None:
        super().__init__(info, threads, deadline)
        from torchcodec.decoders import VideoDecoder

        try:
            self._dec = VideoDecoder(self.path, seek_mode="exact", dimension_order="NHWC",
                                     num_ffmpeg_threads=threads)
        except (RuntimeError, ValueError) as e:
            raise CorruptVideoError(self.path, f"torchcodec cannot open it ({str(e)[:200]})") from e
        n = len(self._dec)
        self._map: np.ndarray | None = None
        if n < info.frames:
            # torchcodec indexed fewer frames than the container lists: map by presentation time.
            try:
                own = np.asarray(self._dec.get_frames_at(list(range(n))).pts_seconds.numpy()) - info.start_time
            except RuntimeError as e:
                raise CorruptVideoError(self.path, f"torchcodec failed ({str(e)[:200]})") from e
            self._map = nearest_frames(own, info.frame_times)
        # n > info.frames: the probe dropped truncated trailing packets; leading indices agree.

    def get(self, indices: np.ndarray) -> np.ndarray:
        self._check_time()
        idx = indices if self._map is None else self._map[indices]
        try:
            return self._dec.get_frames_at(idx.tolist()).data.numpy()
        except (RuntimeError, IndexError) as e:
            raise CorruptVideoError(self.path, f"torchcodec failed ({str(e)[:200]})") from e


class PyAVBackend(FrameBackend):
    """Sequential PyAV decode, skipping the RGB conversion of frames nobody needs.

    Decodes forward from the current position; seeks (to the keyframe before the target) only
    when the next needed frame lies behind or far ahead. Frames are matched to indices by pts.
    """

    name = "pyav"
    seek_gap_frames = 250

    def __init__(self, info: VideoInfo, threads: int = 1, deadline: float | None = None) -> None:
        super().__init__(info, threads, deadline)
        import av

        self._av = av
        try:
            self._c = av.open(self.path)
        except av.FFmpegError as e:
            raise CorruptVideoError(self.path, f"PyAV cannot open it ({e})") from e
        self._s = self._c.streams.video[0]
        self._s.thread_count = threads
        self._tb = float(self._s.time_base)
        self._iter = None
        self._next = 0  # index of the next frame the iterator will produce (best guess)

    def _restart(self, target: int) -> None:
        t = self.info.frame_times[target] + self.info.start_time
        self._c.seek(int(t / self._tb), stream=self._s, backward=True, any_frame=False)
        self._iter = self._c.decode(self._s)
        self._next = -1  # unknown until the first frame arrives

    def get(self, indices: np.ndarray) -> np.ndarray:
        want = {int(i) for i in indices}
        out: dict[int, np.ndarray] = {}
        first = int(indices[0])
        if self._iter is None:
            self._iter = self._c.decode(self._s)
            self._next = 0
            if first > self.seek_gap_frames:
                self._restart(first)
        elif first < self._next or self._next < 0 or first - self._next > self.seek_gap_frames:
            self._restart(first)
        last = int(indices[-1])
        ft = self.info.frame_times
        while len(out) < len(want):
            self._check_time()
            try:
                frame = next(self._iter)
            except StopIteration:
                break
            except self._av.FFmpegError:
                break  # truncated tail: what decoded so far is what exists
            if frame.pts is None:
                continue
            i = int(nearest_frames(ft, np.array([frame.pts * self._tb - self.info.start_time]))[0])
            self._next = i + 1
            if i in want and i not in out:
                out[i] = frame.to_ndarray(format="rgb24")
            if i > last:
                break
        missing = [i for i in indices if int(i) not in out]
        if missing:
            raise CorruptVideoError(
                self.path, f"{len(missing)} of {len(indices)} needed frames do not decode "
                f"(first missing index {missing[0]} of {self.info.frames}; truncated or corrupt)")
        return np.stack([out[int(i)] for i in indices])

    def close(self) -> None:
        self._c.close()


BACKENDS: dict[str, type[FrameBackend]] = {
    "decord": DecordBackend,
    "torchcodec": TorchcodecBackend,
    "pyav": PyAVBackend,
}


class AudioReader:
    """Streams one audio track as mono float32 at several rates, one decode for all of them.

    Sample ``n`` of rate ``r`` is at ``n / r`` seconds on the video's clock (first video frame =
    0): the track's own start offset is honoured by padding with silence or dropping samples.
    ``take(rate, lo, hi)`` reads ahead as needed; ``release(rate, before)`` drops what no later
    window needs, so memory stays bounded by about one window. A window past the end of the
    track gets fewer (or zero) samples, never padding, so windows concatenate to the whole track.
    """

    def __init__(self, path: str, rates: set[int], offset: float = 0.0,
                 check_time: Callable[[], None] | None = None) -> None:
        import av

        self._av = av
        self.path = path
        try:
            self._c = av.open(path)
        except av.FFmpegError as e:
            raise CorruptVideoError(path, f"PyAV cannot open it ({e})") from e
        self._s = self._c.streams.audio[0]
        self._frames = self._c.decode(self._s)
        self._res = {r: av.AudioResampler(format="flt", layout="mono", rate=r) for r in rates}
        self._buf: dict[int, list[np.ndarray]] = {r: [] for r in rates}
        self._have: dict[int, int] = {}  # samples buffered per rate
        self._base: dict[int, int] = {}  # timeline index of the first buffered sample
        self._drop: dict[int, int] = {}
        for r in rates:
            shift = round(offset * r)
            self._base[r] = 0
            self._drop[r] = max(0, -shift)
            self._have[r] = 0
            if shift > 0:
                self._buf[r].append(np.zeros(shift, np.float32))
                self._have[r] = shift
        self._done = False
        self._check = check_time or (lambda: None)

    def _push(self, r: int, chunk: np.ndarray) -> None:
        if self._drop[r]:
            cut = min(self._drop[r], chunk.size)
            chunk, self._drop[r] = chunk[cut:], self._drop[r] - cut
        if chunk.size:
            self._buf[r].append(chunk)
            self._have[r] += chunk.size

    def _pump(self) -> None:
        """Decode one more audio frame into every rate's buffer (or flush at the end)."""
        self._check()
        try:
            frame = next(self._frames)
        except (StopIteration, self._av.FFmpegError):
            frame = None
        for r, res in self._res.items():
            for out in res.resample(frame):
                self._push(r, out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
        if frame is None:
            self._done = True

    def take(self, rate: int, lo: int, hi: int | None) -> np.ndarray:
        """Samples ``[lo, hi)`` at ``rate`` (``hi=None``: to the end of the track); a view, no copy."""
        while not self._done and (hi is None or self._base[rate] + self._have[rate] < hi):
            self._pump()
        if len(self._buf[rate]) > 1:
            self._buf[rate] = [np.concatenate(self._buf[rate])]
        data = self._buf[rate][0] if self._buf[rate] else np.zeros(0, np.float32)
        base = self._base[rate]
        if lo < base:
            raise ValueError(f"audio samples before {base} at {rate} Hz were already released")
        stop = data.size if hi is None else max(0, hi - base)
        return data[lo - base: stop]

    def release(self, rate: int, before: int | None) -> None:
        """Forget samples before index ``before`` at ``rate`` (None: everything buffered)."""
        data = self._buf[rate][0] if len(self._buf[rate]) == 1 else (
            np.concatenate(self._buf[rate]) if self._buf[rate] else np.zeros(0, np.float32))
        cut = data.size if before is None else min(data.size, max(0, before - self._base[rate]))
        rest = data[cut:].copy()  # copy: drop the reference to the released samples
        self._buf[rate] = [rest] if rest.size else []
        self._base[rate] += cut
        self._have[rate] = rest.size

    def close(self) -> None:
        self._c.close()
