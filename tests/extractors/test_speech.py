"""Speech expert with real PocketSphinx on espeak-ng speech; the transformers Whisper slot's clear errors.

The default engine (faster-whisper) has its own tests: test_speech_whisper.py."""

from __future__ import annotations

import shutil
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from videxperts.extractors.base import MediaView
from videxperts.extractors.experts.speech import SpeechConfigError, SpeechExpert, clean_word, to_16k

PHRASE = "hello, this is a test of the speech expert, one two three"


def espeak(text: str, path: Path) -> tuple[np.ndarray, int]:
    """``text`` spoken by espeak-ng: float32 mono and its sample rate (22.05 kHz)."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("Debian espeak-ng not installed")
    subprocess.run([exe, "-w", str(path), text], check=True, timeout=60)
    with wave.open(str(path)) as w:
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0
        return x, w.getframerate()


@pytest.fixture(scope="module")
def speech():
    e = SpeechExpert(engine="pocketsphinx")
    e.load()
    return e


def test_espeak_phrase_gives_ordered_timed_words(speech, tmp_path):
    x, sr = espeak(PHRASE, tmp_path / "p.wav")
    x16 = to_16k(x, sr)
    assert x16.dtype == np.float32 and abs(len(x16) - len(x) * 16000 / sr) <= 1
    duration = len(x16) / 16000
    view = MediaView("v", duration + 2.0, audio=x16, sample_rate=16000, audio_start=2.0)
    out = speech.extract([view])[0]
    words, spans = out.extra["words"], out.extra["word_times"]
    assert len(words) >= 1  # recognition quality is measured in bench/, not asserted here
    assert out.features.shape == (len(words), 384) and out.features.dtype == np.float32
    assert np.all(np.diff(out.timestamps) >= 0)
    assert all(2.0 <= s <= e <= 2.0 + duration + 0.05 for s, e in spans)  # offset by audio_start
    np.testing.assert_array_equal(out.timestamps, [s for s, _ in spans])
    np.testing.assert_allclose(out.features, speech.words.load().encode_words(words), atol=1e-6)
    # the same audio at its native rate is resampled by the engine: same words
    assert speech.extract([MediaView("v", duration, audio=x, sample_rate=sr)])[0].extra["words"] == words


def test_no_audio_and_silence_give_zero_rows(speech):
    for v in (MediaView("mute", 3.0), MediaView("silent", 2.0, audio=np.zeros(32000, np.float32), sample_rate=16000),
              MediaView("tiny", 0.01, audio=np.full(100, 0.3, np.float32), sample_rate=16000)):
        out = speech.extract([v])[0]
        assert out.features.shape == (0, 384) and out.timestamps.shape == (0,)


def test_clean_word():
    assert [clean_word(w) for w in ["<s>", "</s>", "<sil>", "[NOISE]", "++um++", "the(2)", "Hello"]] == [
        None, None, None, None, None, "the", "hello"]


def test_provenance(speech):
    prov = speech.provenance()
    assert "pocketsphinx 5" in prov["engine"] and prov["word_encoder"]["encoder"] == "minilm"
    assert prov["sampling"]["audio"]["sample_rate"] == 16000 and prov["sampling"]["frames"] is None
    assert {"backbone", "weights", "extractor_version", "dtype"} <= set(prov)


def test_whisper_needs_local_weights(tmp_path):
    with pytest.raises(SpeechConfigError, match="needs local weights"):
        SpeechExpert(engine="whisper").load()
    with pytest.raises(SpeechConfigError, match="needs local weights"):
        SpeechExpert(engine="whisper", engine_options={"model_path": str(tmp_path)}).load()
    with pytest.raises(SpeechConfigError, match="unknown engine"):
        SpeechExpert(engine="deepspeech")
    with pytest.raises(SpeechConfigError, match="bad engine_options"):
        SpeechExpert(engine="pocketsphinx", engine_options={"bem": 1e-40}).load()


def test_closed_vocabulary_grammar_recognises_digits(tmp_path):
    """With a word-list grammar the words come only from the list, and clear digits are found."""
    vocab = ["one", "two", "three", "four", "five", "stop", "go", "yes", "no"]
    e = SpeechExpert(engine="pocketsphinx", engine_options={"vocabulary": vocab})
    x, sr = espeak("one, two, three, stop", tmp_path / "d.wav")
    out = e.extract([MediaView("d", 2.0, audio=to_16k(x, sr), sample_rate=16000)])[0]
    assert set(out.extra["words"]) <= set(vocab)
    assert len({"one", "two", "three"} & set(out.extra["words"])) >= 2
    assert np.all(np.diff(out.timestamps) > 0)
    with pytest.raises(SpeechConfigError, match="zzqx"):
        SpeechExpert(engine="pocketsphinx", engine_options={"vocabulary": ["one", "zzqx"]}).load()
