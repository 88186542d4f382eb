"""Model checkpoints of every task: ``model.pt`` holds the config and the best weights.

A training state (``state.pt`` of an epoch checkpoint) and a model checkpoint both carry the
config, so a checkpoint alone rebuilds its model through its task. Loading is
``torch.load(weights_only=True)``: a file with other pickled content is refused in one line.
"""

from __future__ import annotations

import contextlib
import pickle
import re
import warnings
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import torch
from torch import nn

from videxperts.errors import UserError

MODEL_FILE = "model.pt"
MODEL_ARTIFACT = f"checkpoint/{MODEL_FILE}"
STATE_FILE = "state.pt"
FORMAT = "videxperts-model-v1"


def save_model_checkpoint(path: str | Path, cfg: Any, state: dict) -> Path:
    """``model.pt``: the config and the best weights of a training state (what evaluate and teachers load)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": FORMAT, "config": cfg.to_dict(),
                "model": state.get("best_model") or state["model"], "best_epoch": int(state.get("best_epoch", 0)),
                "best_metric": float(state.get("best_metric", float("nan")))}, path)
    return path


_RUN_ID = re.compile(r"[0-9a-f]{32}")


def is_run_id(ref: str) -> bool:
    """Whether ``ref`` has the form of an MLflow run id (32 lowercase hex digits)."""
    return bool(_RUN_ID.fullmatch(ref))


def _load_weights_only(p: Path) -> Any:
    """``torch.load`` restricted to tensors and plain containers; one line for a damaged or unsafe file."""
    try:
        with warnings.catch_warnings():  # torch warns about foreign pickle protocols before refusing them
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UserError(f"{p}: not a videxperts checkpoint (unsafe content refused)") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for a damaged or foreign file
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise UserError(f"{p}: not a readable checkpoint ({type(exc).__name__}: {detail})") from None


def read_checkpoint(path: str | Path) -> tuple[Path, dict]:
    """(the file, its content) of ``model.pt``, a folder holding it, or a training checkpoint folder."""
    p = Path(path)
    if p.is_dir():
        p = p / MODEL_FILE if (p / MODEL_FILE).exists() else p / STATE_FILE
    if not p.exists():
        raise UserError(f"checkpoint not found: {path}")
    ckpt = _load_weights_only(p)
    if not isinstance(ckpt, dict) or "config" not in ckpt:
        raise UserError(f"{p}: not a videxperts checkpoint (no config inside)")
    return p, ckpt


def read_weights(path: str | Path) -> tuple[dict, dict | None]:
    """(weights, the run's config) of a run's ``model.pt`` (its best weights), or (the state_dict,
    None) of a bare state_dict file: what a config's reference to other weights may name."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{p}: no such file")
    obj = _load_weights_only(p)
    if not isinstance(obj, dict):
        raise UserError(f"{p}: neither a state_dict nor a videxperts model.pt")
    if "config" in obj:
        return obj.get("best_model") or obj.get("model") or {}, obj["config"]
    return obj, None


def load_model_checkpoint(path: str | Path) -> tuple[Any, nn.Module, dict]:
    """(typed config, model with its best weights in eval mode, raw checkpoint)."""
    from videxperts.training.config import load_config
    from videxperts.training.task import task_of

    p, ckpt = read_checkpoint(path)
    cfg = load_config(ckpt["config"])
    with _building_for_checkpoint():
        model = task_of(cfg).build_model(cfg)
    weights = ckpt.get("best_model") or ckpt["model"]
    try:
        model.load_state_dict(weights)
    except RuntimeError as exc:
        raise UserError(f"{p}: weights do not fit the model of its config ({str(exc).splitlines()[0][:200]})") from None
    model.eval()
    return cfg, model, ckpt


_FROM_CHECKPOINT: ContextVar[bool] = ContextVar("videxperts_weights_from_checkpoint", default=False)


def weights_come_from_checkpoint() -> bool:
    """True while a model is built only to receive a checkpoint's weights: builders skip their
    file-based initialisation (word vectors, a critic checkpoint), which the weights replace and
    whose files need not exist where the checkpoint is loaded."""
    return _FROM_CHECKPOINT.get()


@contextlib.contextmanager
def _building_for_checkpoint() -> Iterator[None]:
    token = _FROM_CHECKPOINT.set(True)
    try:
        yield
    finally:
        _FROM_CHECKPOINT.reset(token)


def resolve_checkpoint(ref: str, tracking_uri: str | None, dest: str | Path) -> str:
    """A local checkpoint path for ``ref``: an existing path, or an MLflow run id (its best model)."""
    if Path(ref).exists():
        return str(Path(ref).resolve())
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    try:
        client.get_run(ref)
    except MlflowException as exc:
        raise UserError(f"checkpoint {ref!r} is neither a file nor an MLflow run id ({tracking_uri})") from exc
    Path(dest).mkdir(parents=True, exist_ok=True)
    return client.download_artifacts(ref, MODEL_ARTIFACT, str(dest))
