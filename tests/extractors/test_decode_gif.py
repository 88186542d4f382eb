"""An animated GIF is an accepted input suffix; decord cannot open it, PyAV decodes it (issue 14, item 7)."""

from __future__ import annotations

from pathlib import Path

from tests.media import make_gif
from videxperts.extractors.base import DecodeNeeds, FrameNeeds
from videxperts.extractors.decode import decode_video, probe


def test_animated_gif_decodes_with_the_default_backend(tmp_path: Path) -> None:
    gif = make_gif(tmp_path / "anim.gif", frames=12, fps=10)
    info = probe(gif)
    assert info.codec == "gif" and not info.has_audio
    views = decode_video(gif, {"scene": DecodeNeeds(FrameNeeds(fps=5, size=32))}, backend="decord")
    frames = views["scene"].frames
    assert frames.shape[0] == 6 and frames.shape[-1] == 3
    assert frames.std() > 0  # real pixels, not a blank fill
