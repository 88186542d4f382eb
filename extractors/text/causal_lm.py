"""GPT-2-class causal language models as caption encoders (the published CE used OpenAI GPT).

``model`` must be a local directory written by ``save_pretrained`` (config, tokenizer, weights);
nothing is downloaded. Per-token features are the last hidden states of every BPE token of
the caption: GPT-2 adds no special tokens, so there is nothing to drop. A word vector is the
mean of the states of the word's tokens, encoded with a leading space (" word"), the form a
word takes inside a sentence for GPT-2's byte-level BPE.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from videxperts.extractors.text.base import TextEncoder, TextEncoderError
from videxperts.extractors.text.hf import config_dim, hidden_states, load_local, read_config, weights_identity


def _model_dir(model: str | None) -> Path:
    if not model:
        raise TextEncoderError(
            "gpt2: weights are not present: set model: to a local directory saved with "
            "save_pretrained() (GPT-2-class config, tokenizer and weights); nothing is downloaded"
        )
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise TextEncoderError(f"gpt2: weights are not present: {model} has no config.json")
    return path


class CausalLMEncoder(TextEncoder):
    """Last hidden states of a local GPT-2-class model (``AutoModel``, no LM head)."""

    name = "gpt2"

    def __init__(self, model: str | None = None, device: str = "cpu", max_tokens: int = 128,
                 batch_size: int = 32, word_prefix: str = " ", **_: Any) -> None:
        self.model_dir = _model_dir(model)
        self.device = device
        self.max_tokens = int(max_tokens)
        self.batch_size = int(batch_size)
        self.word_prefix = word_prefix
        self.tokenizer, self.model = load_local(self.model_dir, device)
        self.dim = int(self.model.config.hidden_size)
        self._cfg = {"model": model, "max_tokens": self.max_tokens, "word_prefix": word_prefix}
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else (self.tokenizer.eos_token_id or 0))

    def _ids(self, texts: list[str]) -> list[list[int]]:
        enc = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                             max_length=self.max_tokens)
        return [list(x) for x in enc["input_ids"]]

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        states = hidden_states(self.model, self._ids(texts), pad_id=self.pad_id,
                               device=self.device, batch_size=self.batch_size)
        return [s if len(s) else self._empty() for s in states]

    def encode_words(self, words: list[str]) -> np.ndarray:
        if not words:
            return self._empty()
        states = self.encode_tokens([self.word_prefix + w.strip() for w in words])
        return np.stack([s.mean(axis=0) if len(s) else np.zeros(self.dim, np.float32)
                         for s in states]).astype(np.float32)

    def provenance(self) -> dict[str, Any]:
        return self.describe(**self._cfg)

    @classmethod
    def describe(cls, model: str | None = None, max_tokens: int = 128, word_prefix: str = " ",
                 **_: Any) -> dict[str, Any]:
        """Provenance without loading the network (same dict as a loaded encoder's)."""
        model_dir = _model_dir(model)
        cfg = read_config(model_dir)
        return {
            "encoder": cls.name,
            "backbone": f"{cfg.get('model_type', 'causal-lm')}:{model_dir.name}",
            "weights": weights_identity(model_dir),
            "dim": config_dim(model_dir),
            "tokens": "last hidden state per BPE token (no special tokens)",
            "word_vector": f"mean of the token states of {word_prefix!r} + word",
            "max_tokens": int(max_tokens),
            "dtype": "float32",
        }
