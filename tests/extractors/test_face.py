"""Face expert: real MTCNN and Haar detection on real photos, aligned crops, ResNet embeddings, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.data import astronaut, camera

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts._frames import ExpertConfigError
from videxperts.extractors.experts._mtcnn import TEMPLATE_112, MTCNNDetector, align_face
from videxperts.extractors.experts.face import FaceExpert
from videxperts.extractors.weights import file_sha256, save_checkpoint


def texture(seed: int = 0) -> np.ndarray:
    """A frame of smooth random texture (no face)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (32, 32, 3)).astype(np.uint8)
    return np.kron(small, np.ones((16, 16, 1), np.uint8))


def view(frames: list[np.ndarray], vid: str = "v") -> MediaView:
    return MediaView(vid, len(frames) / 2, frames=np.stack(frames), frame_times=np.arange(len(frames)) / 2.0)


@pytest.fixture(scope="module", params=["mtcnn", "haar"])
def face50(request):
    e = FaceExpert(detector=request.param, crop_size=112, device="cpu")
    e.load()
    return e


def test_detects_the_astronaut_and_not_a_texture(face50):
    a, t = astronaut(), texture()
    out_face, out_none = face50.extract([view([a, t, a]), view([t, texture(1)], "w")])
    assert out_face.features.shape == (2, 512) and out_face.features.dtype == np.float32
    np.testing.assert_array_equal(out_face.timestamps, [0.0, 1.0])
    np.testing.assert_allclose(np.linalg.norm(out_face.features, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(out_face.features[0], out_face.features[1], atol=1e-6)  # same face, same row
    (t0, x, y, w, h, p), _ = out_face.extra["boxes"]
    assert t0 == 0.0 and 150 <= x + w / 2 <= 260 and 60 <= y + h / 2 <= 170  # Eileen Collins' face
    assert 0.9 <= p <= 1.0
    assert out_none.features.shape == (0, 512) and out_none.extra["boxes"] == []


def test_provenance(face50):
    prov = face50.provenance()
    assert prov["weights"] == "random-init:seed=0"
    if face50.detector_name == "haar":
        assert "haarcascade_frontalface_default.xml" in prov["detector"] and "opencv" in prov["detector"]
        assert prov["face_crop"] == "box + margin"
    else:
        assert "MTCNN" in prov["detector"] and len(prov["detector_weights_sha256"]) == 64
        assert prov["face_crop"] == "landmark-aligned"
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


def test_default_is_mtcnn_and_it_finds_the_cameraman_haar_misses():
    """skimage's cameraman (a real photo, face half-turned): MTCNN finds it, Haar does not."""
    assert FaceExpert().detector_name == "mtcnn"
    frame = np.repeat(camera()[:, :, None], 3, axis=2)
    found = MTCNNDetector()(frame)
    assert len(found) == 1 and found.probs[0] > 0.99 and found.landmarks is not None
    x, y, w, h = found.boxes[0]
    assert 180 <= x + w / 2 <= 260 and 100 <= y + h / 2 <= 200
    haar = FaceExpert(detector="haar", device="cpu")
    assert len(haar.detect(frame)) == 0


def test_aligned_crop_puts_the_eyes_on_the_template():
    """Re-detecting on the aligned crop finds the landmarks where the template puts them."""
    a = astronaut()
    det = MTCNNDetector(min_size=20)
    found = det(a)
    crop = align_face(a, found.landmarks[0], margin=0.4, size=224)
    again = det(crop)
    assert len(again) >= 1
    shrink = 1.4 / 1.8
    want = (56 + (TEMPLATE_112 - 56) * shrink) * 2
    assert np.abs(again.landmarks[0] - want).max() < 12  # pixels, on a 224 px crop
    (lx, ly), (rx, ry) = again.landmarks[0][:2]
    assert abs(ly - ry) < 4  # eyes level


def test_config_errors():
    with pytest.raises(ExpertConfigError, match="detector"):
        FaceExpert(detector="yunet")
    with pytest.raises(ExpertConfigError, match="variant"):
        FaceExpert(embedding="vit")
