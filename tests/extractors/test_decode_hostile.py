"""Hostile inputs: every bad file becomes a typed error naming it (or decodes), in bounded time."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from tests.media import make_hostile_corpus
from videxperts.extractors.base import (
    AudioNeeds,
    CorruptVideoError,
    DecodeNeeds,
    DecodeTimeoutError,
    EmptyFileError,
    FrameNeeds,
    NoVideoStreamError,
    UnsupportedVideoError,
    VideoInputError,
)
from videxperts.extractors.decode import BACKENDS, MissingVideoError, decode_video, decode_windows, probe
from videxperts.extractors.decode.backends import PyAVBackend

pytestmark = pytest.mark.timeout(120)  # a hang fails the test instead of stalling the suite
TIMEOUT_S = 30.0
FRAMES_AND_AUDIO = {
    "scene": DecodeNeeds(FrameNeeds(fps=2, size=32)),
    "clip": DecodeNeeds(FrameNeeds(fps=8, size=16, clip_len=4, clip_stride=4)),
    "audio": DecodeNeeds(audio=AudioNeeds(16_000, 0.96)),
}
AUDIO_ONLY = {"audio": DecodeNeeds(audio=AudioNeeds(16_000, 0.96))}

# name -> error expected when frames are needed (None: decodes)
EXPECTED: dict[str, type[VideoInputError] | None] = {
    "good": None,
    "zero_byte": EmptyFileError,
    "truncated": CorruptVideoError,
    "random_bytes": CorruptVideoError,
    "header_only": CorruptVideoError,
    "audio_only": NoVideoStreamError,
    "no_audio": None,
    "vfr": None,
    "rotated": None,
    "tiny_1x1": None,
    "huge_frame": UnsupportedVideoError,
    "long_sparse": None,
    "unicode_path": None,
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, Path]:
    return make_hostile_corpus(tmp_path_factory.mktemp("hostile"))


def _decode_all(path: Path, needs, backend: str) -> list[dict]:
    return list(decode_windows(path, needs, backend=backend, window_seconds=120, timeout_s=TIMEOUT_S))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hostile_file_gives_typed_error_or_decodes(name, backend, corpus):
    path = corpus[name]
    expected = EXPECTED[name]
    started = time.monotonic()
    if expected is None:
        windows = _decode_all(path, FRAMES_AND_AUDIO, backend)
        first = windows[0]
        assert first["scene"].frames.dtype == np.uint8 and first["scene"].frames.shape[0] >= 1
        assert min(first["scene"].frames.shape[1:3]) == 32
        has_audio = name in ("good", "unicode_path")
        assert (first["audio"].audio is not None) == has_audio  # no track: audio view is None
        if name == "long_sparse":  # 3 frames over an hour: 7201 samples at 2 fps, 31 windows
            assert len(windows) == 31
            assert sum(len(w["scene"].frames) for w in windows) == 7201
    else:
        with pytest.raises(expected) as err:
            _decode_all(path, FRAMES_AND_AUDIO, backend)
        assert str(path) in str(err.value) and err.value.path == str(path)
    assert time.monotonic() - started < TIMEOUT_S * 2  # bounded (generous: shared CI cores)


def test_truncated_faststart_decodes_what_is_there_or_fails_typed(corpus):
    path = corpus["truncated_faststart"]
    info = probe(path)
    assert 0 < info.frames < 50  # the index lists only packets whose bytes exist
    v = decode_video(path, FRAMES_AND_AUDIO, backend="pyav")
    assert v["scene"].frames.shape[0] == 2 and v["audio"].audio.size > 0
    try:  # decord refuses the file outright; that is still a typed, named error
        decode_video(path, FRAMES_AND_AUDIO, backend="decord")
    except CorruptVideoError as e:
        assert str(path) in str(e)


def test_audio_only_file_serves_audio_experts(corpus):
    v = decode_video(corpus["audio_only"], AUDIO_ONLY)["audio"]
    assert v.frames is None and v.audio.dtype == np.float32 and abs(v.audio.size - 32_000) < 1_000


def test_no_audio_track_is_missing_not_an_error(corpus):
    info = probe(corpus["no_audio"])
    assert info.has_video and not info.has_audio
    v = decode_video(corpus["no_audio"], AUDIO_ONLY)["audio"]
    assert v.audio is None


def test_huge_frame_is_accepted_when_the_limit_is_raised(corpus):
    info = probe(corpus["huge_frame"], max_pixels=None)
    assert (info.width, info.height, info.frames) == (8000, 8000, 1)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(MissingVideoError, match="nope.mp4"):
        probe(tmp_path / "nope.mp4")


def test_hung_demuxer_times_out(tmp_path):
    fifo = tmp_path / "never written.mp4"
    os.mkfifo(fifo)  # opening it blocks forever: the probe child must be killed
    started = time.monotonic()
    with pytest.raises(DecodeTimeoutError, match="never written.mp4"):
        probe(fifo, timeout_s=2.0)
    assert time.monotonic() - started < 30


def test_decode_deadline_is_enforced(corpus):
    info = probe(corpus["good"])
    backend = PyAVBackend(info, deadline=time.monotonic() - 1)
    with pytest.raises(DecodeTimeoutError, match="good.mp4"):
        backend.get(np.arange(10))
    backend.close()


def test_isolated_decode_matches_and_keeps_error_types(corpus):
    needs = {"scene": FRAMES_AND_AUDIO["scene"], "audio": FRAMES_AND_AUDIO["audio"]}
    inline = decode_video(corpus["good"], needs, backend="pyav")
    isolated = decode_video(corpus["good"], needs, backend="pyav", isolate=True)
    assert np.array_equal(inline["scene"].frames, isolated["scene"].frames)
    assert np.array_equal(inline["audio"].audio, isolated["audio"].audio)
    with pytest.raises(CorruptVideoError, match="random_bytes.mp4"):
        decode_video(corpus["random_bytes"], needs, isolate=True)
    with pytest.raises(NoVideoStreamError, match="audio_only.mp4"):
        decode_video(corpus["audio_only"], needs, isolate=True)


def test_isolated_decode_times_out_on_a_hung_input(tmp_path):
    fifo = tmp_path / "hung.mp4"
    os.mkfifo(fifo)
    with pytest.raises(DecodeTimeoutError, match="hung.mp4"):
        decode_video(fifo, FRAMES_AND_AUDIO, timeout_s=2.0, isolate=True)
    # nothing the decode started may outlive it (the probe child used to stay blocked on the FIFO)
    deadline = time.monotonic() + 10
    while (left := _processes_naming(str(fifo))) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in left:  # clean up even when failing
        os.kill(pid, 9)
    assert not left, f"processes left behind on the FIFO: {left}"


def _processes_naming(text: str) -> list[int]:
    """Live processes whose command line mentions ``text`` (zombies excluded)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat", "rb") as f:
                state = f.read().decode(errors="replace").rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if text in cmd and state != "Z":
            found.append(int(entry))
    return found
