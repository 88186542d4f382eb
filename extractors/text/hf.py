"""Shared loading and batching for Hugging Face encoders read from a local directory only.

Nothing here touches the network: ``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` make a
missing file an immediate, clear error instead of a download attempt.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from videxperts.extractors.text.base import TextEncoderError, sha256_of

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


def weights_file(model_dir: Path) -> Path:
    """The weights file of a saved model directory, or a clear error naming the directory."""
    for name in WEIGHT_FILES:
        if (model_dir / name).is_file():
            return model_dir / name
    raise TextEncoderError(
        f"{model_dir}: model weights are not present (expected one of {', '.join(WEIGHT_FILES)}); "
        "nothing is downloaded at run time, save the model there with save_pretrained()"
    )


@lru_cache(maxsize=8)
def _cached_identity(path: str, size: int, mtime_ns: int) -> str:
    return "sha256:" + sha256_of(path)


def weights_identity(model_dir: Path) -> str:
    """``sha256:<hex>`` of the weights file, hashed once per process per file version."""
    f = weights_file(model_dir)
    st = f.stat()
    return _cached_identity(str(f), st.st_size, st.st_mtime_ns)


def load_local(model_dir: str | Path, device: str = "cpu"):
    """Tokenizer + model (eval mode) from ``model_dir`` with no network access."""
    from transformers import AutoModel, AutoTokenizer

    path = Path(model_dir).expanduser()
    if not path.is_dir():
        raise TextEncoderError(f"{model_dir}: model directory not found (weights are not present)")
    weights_file(path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        model = AutoModel.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as e:
        raise TextEncoderError(f"{model_dir}: cannot load model ({type(e).__name__}: {e})") from e
    model.eval().to(device)
    return tok, model


@torch.no_grad()
def hidden_states(
    model, ids: list[list[int]], *, pad_id: int, device: str, batch_size: int
) -> list[np.ndarray]:
    """Last hidden states ``[len(ids_i), D]`` for each id sequence, padded per batch on the right.

    Right padding with an attention mask leaves the states of real tokens unchanged for both
    bidirectional (BERT) and causal (GPT-2) models; padded rows are cut off before returning.
    """
    out: list[np.ndarray] = [np.zeros((0, 0), np.float32)] * len(ids)
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))  # similar lengths share a batch
    for start in range(0, len(order), batch_size):
        chunk = [i for i in order[start:start + batch_size]]
        width = max(1, max(len(ids[i]) for i in chunk))
        batch = torch.full((len(chunk), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, i in enumerate(chunk):
            n = len(ids[i])
            if n:
                batch[row, :n] = torch.tensor(ids[i], dtype=torch.long)
                mask[row, :n] = 1
        states = model(input_ids=batch.to(device), attention_mask=mask.to(device)).last_hidden_state
        states = states.float().cpu().numpy()
        for row, i in enumerate(chunk):
            out[i] = np.ascontiguousarray(states[row, : len(ids[i])], dtype=np.float32)
    return out


def read_config(model_dir: Path) -> dict:
    """The model's ``config.json`` as a dict (clear error when absent or unreadable)."""
    import json

    f = Path(model_dir) / "config.json"
    try:
        return json.loads(f.read_text())
    except (OSError, ValueError) as e:
        raise TextEncoderError(f"{model_dir}: cannot read config.json ({e}); weights are not present") from e


def config_dim(model_dir: Path) -> int:
    """Hidden size from ``config.json`` (``hidden_size``, or GPT-2's ``n_embd``)."""
    cfg = read_config(model_dir)
    for key in ("hidden_size", "n_embd", "d_model"):
        if key in cfg:
            return int(cfg[key])
    raise TextEncoderError(f"{model_dir}: config.json has no hidden size")
