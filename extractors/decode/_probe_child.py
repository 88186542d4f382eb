"""Run in a child process by :mod:`videxperts.extractors.decode.probe`: open one file with PyAV, print JSON.

Kept free of project imports so a hung or crashing demuxer only takes this process down.
Prints ``{"ok": true, ...}`` or ``{"ok": false, "kind": ..., "reason": ...}`` on stdout.
"""

from __future__ import annotations

import json
import os
import sys


def _probe(path: str, max_pixels: int) -> dict:
    import av

    try:
        container = av.open(path)
    except av.error.FileNotFoundError:
        return {"ok": False, "kind": "missing", "reason": "file not found"}
    except (av.error.InvalidDataError, av.error.EOFError) as e:
        return {"ok": False, "kind": "corrupt", "reason": f"not a readable media container ({e.strerror})"}
    except av.FFmpegError as e:
        return {"ok": False, "kind": "corrupt", "reason": f"cannot open ({type(e).__name__}: {e.strerror})"}
    with container:
        videos = list(container.streams.video)
        audios = list(container.streams.audio)
        info: dict = {"ok": True, "has_video": bool(videos), "has_audio": bool(audios),
                      "container_duration": (container.duration / 1e6) if container.duration else None}
        if audios:
            a = audios[0]
            info["audio_sample_rate"] = a.codec_context.sample_rate or a.rate
            info["audio_start"] = float(a.start_time * a.time_base) if a.start_time is not None else 0.0
            info["audio_duration"] = float(a.duration * a.time_base) if a.duration else None
        if not videos:
            if not audios:
                return {"ok": False, "kind": "corrupt", "reason": "no video or audio stream"}
            return info
        v = videos[0]
        w, h = v.codec_context.width, v.codec_context.height
        info.update(width=w, height=h, codec=v.codec_context.name,
                    header_frames=v.frames, header_fps=float(v.average_rate or v.guessed_rate or 0))
        if not w or not h:
            return {"ok": False, "kind": "corrupt", "reason": "video stream without a frame size"}
        if max_pixels and w * h > max_pixels:
            return {"ok": False, "kind": "unsupported",
                    "reason": f"frame size {w}x{h} exceeds the limit of {max_pixels} pixels"}
        # Presentation times of every packet (no decoding): the frame index all backends share.
        tb = float(v.time_base)
        pts: list[float] = []
        durs: list[float] = []
        bad: list[bool] = []
        try:
            file_size = os.path.getsize(path) if os.path.isfile(path) else None
        except OSError:
            file_size = None
        try:
            for packet in container.demux(v):
                if packet.size == 0:
                    continue  # flush packet
                cut = file_size is not None and packet.pos is not None and packet.pos + packet.size > file_size
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    continue
                pts.append(stamp * tb)
                durs.append((packet.duration or 0) * tb)
                bad.append(bool(cut or packet.is_corrupt))
        except av.FFmpegError:
            pass  # truncated media data: keep the packets read so far
        # Packets cut off by truncation (the demuxer flags them corrupt) cannot decode; only a
        # trailing run is dropped, so indices stay aligned with what the decoders count.
        while bad and bad[-1]:
            bad.pop(), pts.pop(), durs.pop()
        if not pts:
            return {"ok": False, "kind": "corrupt", "reason": "video stream has no readable frames"}
        # One real decode of the first frame: catches header-only and garbage payloads.
        rotation = 0
        try:
            container.seek(0)
            frame = next(container.decode(v), None)
            if frame is None:  # a still image (image2 demuxer) cannot seek back: open it afresh
                with av.open(path) as again:
                    frame = next(again.decode(video=0))
            rotation = int(getattr(frame, "rotation", 0) or 0) % 360
        except (StopIteration, av.FFmpegError) as e:
            return {"ok": False, "kind": "corrupt", "reason": f"first video frame does not decode ({e})"}
        info.update(pts=pts, last_duration=durs[-1] if durs else 0.0, rotation=rotation)
        return info


def _die_with_parent(parent: int) -> None:
    """Ask Linux to SIGKILL this process when its parent dies, so a probe blocked on a FIFO or
    a hung demuxer never outlives the decode that started it (the parent may be SIGKILLed on a
    timeout and then has no chance to end us)."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the parent's own cleanup still applies
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def main() -> None:
    path, max_pixels = sys.argv[1], int(sys.argv[2])
    _die_with_parent(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    try:
        result = _probe(path, max_pixels)
    except Exception as e:  # any other failure is still a typed answer, not a traceback
        result = {"ok": False, "kind": "corrupt", "reason": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(result))


if __name__ == "__main__":
    main()
