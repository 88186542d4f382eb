"""Deterministic synthetic video-text dataset made of real media (``videxperts data synth``).

Every clip is a real H.264 + AAC ``.mp4`` whose content is controlled, so each expert has a
ground truth to find: a background scene (scene/instance experts), one or two moving coloured
shapes (motion experts), a printed word (OCR), a spoken word made with espeak-ng (speech), a
background tone or noise (audio) and, in some clips, a real face photo (face). The captions
describe exactly those attributes, so retrieval on this data is learnable.

Determinism: the dataset plan (splits, which clips get a face, which have no audio track) is
drawn from ``seed`` with exact proportions so even a 6-clip dataset has every case; the content
of clip ``i`` is drawn from an RNG seeded with ``(seed, i)`` alone, so it does not depend on the
number of workers. Clips are encoded by Debian's ffmpeg with single-threaded x264 and bitexact
flags, so the same seed gives byte-identical videos, manifest and captions (checked in tests).

Modules: ``vocab`` (constants and attribute vocabulary), ``plan`` (clip specs), ``captions``,
``render`` (frames, speech, audio, the ffmpeg encode) and ``dataset`` (resumable generation,
manifest and captions files).
"""

from videxperts.pipelines.synth.dataset import synthesize

__all__ = ["synthesize"]
