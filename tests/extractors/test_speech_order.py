"""A video's speech features do not depend on what the actor transcribed before it.

Actors process videos in the order they finish decoding, which varies from run to run; an
engine that carries state across videos (a decoder's running cepstral mean, a cache) would make
`make demo` irreproducible. Both engines: the second clip transcribed after the first gives
exactly what it gives on a fresh engine.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.extractors.test_speech import espeak
from videxperts.extractors.base import MediaView
from videxperts.extractors.experts.speech import SpeechExpert, to_16k


def _view(text: str, path) -> MediaView:
    x, sr = espeak(text, path)
    x16 = to_16k(x, sr)
    return MediaView(path.stem, len(x16) / 16000, audio=x16, sample_rate=16000, audio_start=0.0)


@pytest.mark.parametrize("engine", ["faster-whisper", "pocketsphinx"])
def test_transcription_is_independent_of_earlier_videos(engine: str, tmp_path) -> None:
    first = _view("the quick brown fox jumps over the lazy dog, again and again and again", tmp_path / "a.wav")
    second = _view("hello world, seven green circles move to the left", tmp_path / "b.wav")
    used = SpeechExpert(engine=engine)
    used.load()
    used.extract([first])
    after = used.extract([second])[0]
    fresh = SpeechExpert(engine=engine)
    fresh.load()
    alone = fresh.extract([second])[0]
    assert after.extra["words"] == alone.extra["words"]
    np.testing.assert_array_equal(after.timestamps, alone.timestamps)
    np.testing.assert_array_equal(after.features, alone.features)
