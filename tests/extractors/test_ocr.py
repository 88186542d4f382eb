"""OCR expert with the real PP-OCRv4 (rapidocr) engine and the tesseract CLI on rendered words."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts.ocr import NewWords, OCRConfigError, OCRExpert, TesseractEngine

PROV_KEYS = {"backbone", "weights", "sampling", "extractor_version", "dtype", "engine", "word_encoder"}


def word_frame(word: str | None, seed: int = 0) -> np.ndarray:
    """320x240 textured frame, optionally with ``word`` in large white letters."""
    rng = np.random.default_rng(seed)
    f = (rng.integers(0, 60, (240, 320, 3))).astype(np.uint8)
    if word:
        cv2.putText(f, word, (20, 140), cv2.FONT_HERSHEY_DUPLEX, 2.0, (255, 255, 255), 4, cv2.LINE_AA)
    return f


@pytest.fixture(scope="module")
def ocr():
    e = OCRExpert(fps=1.0)
    e.load()
    return e


def view(frames, times, vid="v", **kw) -> MediaView:
    return MediaView(vid, float(times[-1]) + 1, frames=np.stack(frames), frame_times=np.asarray(times, float), **kw)


def test_reads_rendered_words_once_with_first_timestamp(ocr):
    frames = [word_frame(None), word_frame("RIVER"), word_frame("RIVER", 1), word_frame("APPLE")]
    out = ocr.extract([view(frames, [0.0, 1.0, 2.0, 3.0])])[0]
    assert out.extra["words"] == ["river", "apple"]
    np.testing.assert_array_equal(out.timestamps, [1.0, 3.0])
    assert out.features.shape == (2, 384) and out.features.dtype == np.float32
    np.testing.assert_allclose(out.features, ocr.words.load().encode_words(["river", "apple"]), atol=1e-6)


def test_no_text_gives_zero_rows_and_windows_continue(ocr):
    out = ocr.extract([view([word_frame(None, 3)], [0.0], vid="blank")])[0]
    assert out.features.shape == (0, 384) and out.timestamps.shape == (0,)
    # the same word at the end of window 0 and the start of window 1 is one word
    w0 = view([word_frame("HOUSE")], [0.0], vid="w", window_index=0, is_last_window=False)
    w1 = view([word_frame("HOUSE", 2), word_frame(None)], [1.0, 2.0], vid="w", window_index=1)
    o0, = ocr.extract([w0])
    o1, = ocr.extract([w1])
    assert o0.extra["words"] == ["house"] and o1.extra["words"] == []


def test_new_words_dedup_rule():
    d = NewWords()
    assert d(["the", "the", "cat"]) == ["the", "cat"]
    assert d(["the", "dog"]) == ["dog"]
    assert d([]) == []
    assert d(["the"]) == ["the"]  # reappears after a gap: counted again


def test_provenance_and_config_errors(ocr):
    prov = ocr.provenance()
    assert PROV_KEYS <= set(prov)
    assert "rapidocr-onnxruntime" in prov["engine"] and prov["word_encoder"]["dim"] == 384
    assert prov["sampling"]["frames"]["fps"] == 1.0 and prov["sampling"]["frames"]["size"] is None
    with pytest.raises(OCRConfigError, match="unknown engine"):
        OCRExpert(engine="magic")
    with pytest.raises(OCRConfigError, match="bad engine_options"):
        OCRExpert(engine_options={"thredz": 2}).load()


@pytest.mark.skipif(shutil.which("tesseract") is None, reason="Debian tesseract-ocr not installed")
def test_tesseract_engine_reads_a_rendered_word():
    f = np.full((240, 320, 3), 255, np.uint8)
    cv2.putText(f, "GARDEN", (20, 140), cv2.FONT_HERSHEY_DUPLEX, 2.0, (0, 0, 0), 4, cv2.LINE_AA)
    eng = TesseractEngine()
    texts = [t.lower() for t, conf in eng.read(f) if conf > 0.5]
    assert "garden" in texts
    assert eng.read(np.full((60, 80, 3), 255, np.uint8)) == []
