"""Still images (jpg, png, webp) are one-frame media: listed like videos, decoded by the same reader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from videxperts.errors import UserError
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, FrameNeeds
from videxperts.extractors.decode import decode_video, probe
from videxperts.pipelines.extract_inputs import list_inputs


def _image(h: int = 48, w: int = 64) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1).astype(np.uint8)  # smooth: jpg stays close


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("imgs")
    a = _image()
    out = {}
    for ext, kw in (("png", {}), ("jpg", {"quality": 95}), ("webp", {"lossless": True})):
        out[ext] = root / f"pic.{ext}"
        Image.fromarray(a).save(out[ext], **kw)
    return out


@pytest.mark.parametrize("backend", ["decord", "pyav", "torchcodec"])
@pytest.mark.parametrize("ext", ["png", "jpg", "webp"])
def test_an_image_decodes_as_one_frame_for_every_expert(images, ext, backend):
    info = probe(images[ext])
    assert (info.frames, info.width, info.height, info.has_audio) == (1, 64, 48, False)
    needs = {"frame": DecodeNeeds(FrameNeeds(1.0, 32)), "native": DecodeNeeds(FrameNeeds(2.0)),
             "clip": DecodeNeeds(FrameNeeds(25.0, 32, clip_len=8, clip_stride=8)),
             "audio": DecodeNeeds(audio=AudioNeeds())}
    v = decode_video(images[ext], needs, backend=backend)
    assert v["frame"].frames.shape == (1, 32, 43, 3) and v["frame"].frame_times.tolist() == [0.0]
    assert v["native"].frames.shape == (1, 48, 64, 3)
    clip = v["clip"].frames  # one clip: the single frame repeated to the clip length
    assert clip.shape[0] == 8 and (clip == clip[:1]).all() and set(v["clip"].frame_times) == {0.0}
    assert v["audio"].audio is None
    want = np.asarray(Image.open(images[ext]).convert("RGB")).astype(int)
    err = np.abs(v["native"].frames[0].astype(int) - want)
    assert err.max() == 0 if ext != "jpg" else err.mean() < 2  # lossless exact; jpg decoders agree closely


def test_folders_globs_and_single_files_list_images(images, tmp_path):
    root = images["png"].parent
    (root / "notes.txt").write_text("not media")
    inputs = list_inputs(str(root))
    assert sorted(Path(v.path).name for v in inputs.videos) == ["pic.jpg", "pic.png", "pic.webp"]
    assert len({v.video_id for v in inputs.videos}) == 3  # same stem: each keeps its suffix
    assert [Path(v.path).name for v in list_inputs(str(root / "*.webp")).videos] == ["pic.webp"]
    assert [v.video_id for v in list_inputs(str(images["jpg"])).videos] == ["pic"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no video or image files"):
        list_inputs(str(tmp_path / "empty"))
    with pytest.raises(UserError, match="not a video or image file"):
        list_inputs(str(root / "notes.txt"))


def test_a_broken_image_is_a_typed_error_naming_it(tmp_path):
    from videxperts.extractors.base import VideoInputError

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(VideoInputError, match="broken.png"):
        probe(bad)
