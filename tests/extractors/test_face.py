"""Face expert: real Haar detection on a real photo, ResNet embeddings, checkpoint round trip."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts._frames import ExpertConfigError
from videxperts.extractors.experts.face import FaceExpert
from videxperts.extractors.weights import file_sha256, save_checkpoint


def texture(seed: int = 0) -> np.ndarray:
    """A frame of smooth random texture (no face)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)
    return np.kron(small, np.ones((16, 16, 1), np.uint8))


def view(frames: list[np.ndarray], vid: str = "v") -> MediaView:
    return MediaView(vid, len(frames) / 2, frames=np.stack(frames), frame_times=np.arange(len(frames)) / 2.0)


@pytest.fixture(scope="module")
def face50():
    e = FaceExpert(crop_size=112, device="cpu")
    e.load()
    return e


def test_detects_the_astronaut_and_not_a_texture(face50):
    a, t = astronaut(), texture()
    out_face, out_none = face50.extract([view([a, t, a]), view([t, texture(1)], "w")])
    assert out_face.features.shape == (2, 512) and out_face.features.dtype == np.float32
    np.testing.assert_array_equal(out_face.timestamps, [0.0, 1.0])
    np.testing.assert_allclose(np.linalg.norm(out_face.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out_face.features[0], out_face.features[1], atol=1e-6)  # same face, same row
    (t0, x, y, w, h), _ = out_face.extra["boxes"]
    assert t0 == 0.0 and 150 <= x + w / 2 <= 260 and 60 <= y + h / 2 <= 170  # Eileen Collins' face
    assert out_none.features.shape == (0, 512) and out_none.extra["boxes"] == []


def test_provenance(face50):
    prov = face50.provenance()
    assert prov["weights"] == "random-init:seed=0"
    assert "haarcascade_frontalface_default.xml" in prov["detector"] and "opencv" in prov["detector"]
    assert prov["sampling"]["frames"] == {"fps": 2.0, "size": None, "clip_len": 1, "clip_stride": 1}
    assert {"backbone", "extractor_version", "dtype"} <= set(prov)


def test_checkpoint_round_trip_and_seeds(tmp_path):
    a = [astronaut()]
    e = FaceExpert(embedding="resnet18", dim=128, crop_size=112, seed=3, device="cpu")
    e.load()
    ref = e.extract([view(a)])[0].features
    assert ref.shape == (1, 128)
    ident = save_checkpoint(e.model, tmp_path / "face.pt")
    assert ident == "sha256:" + file_sha256(tmp_path / "face.pt")
    loaded = FaceExpert(embedding="resnet18", dim=128, crop_size=112, weights=str(tmp_path / "face.pt"),
                        device="cpu")
    loaded.load()
    np.testing.assert_array_equal(loaded.extract([view(a)])[0].features, ref)
    assert loaded.provenance()["weights"] == ident
    other = FaceExpert(embedding="resnet18", dim=128, crop_size=112, seed=4, device="cpu")
    other.load()
    assert not np.allclose(other.extract([view(a)])[0].features, ref)


def test_config_errors():
    with pytest.raises(ExpertConfigError, match="detector"):
        FaceExpert(detector="yunet")
    with pytest.raises(ExpertConfigError, match="variant"):
        FaceExpert(embedding="vit")
