"""The ``videxperts evaluate`` job: a run's best model (or a checkpoint) on one split of a store.

The checkpoint carries its config, so its task rebuilds the model, checks the store and scores
the split with the same code that evaluated it during training.
"""

from __future__ import annotations

import tempfile

from videxperts.errors import UserError


def evaluate_checkpoint(ref: str, store: str, data: str | None = None, split: str = "test",
                        tracking_uri: str | None = None) -> dict:
    """Metrics of the checkpoint/run ``ref`` on ``split`` of ``store`` (in-process, CPU or one GPU)."""
    import torch

    from videxperts.storage.reader import StoreReader
    from videxperts.training.checkpoint import load_model_checkpoint, resolve_checkpoint
    from videxperts.training.preflight import check_config_matches_store, open_store
    from videxperts.training.runner import evaluate
    from videxperts.training.splits import read_splits
    from videxperts.training.task import task_of

    with tempfile.TemporaryDirectory(prefix="vx-eval-") as tmp:
        path = resolve_checkpoint(ref, tracking_uri, tmp)
        cfg, model, ckpt = load_model_checkpoint(path)
    # a model trained on other features (dims, experts) is one line here, not a shape error mid-forward
    opened = open_store(store)
    check_config_matches_store(cfg, opened, f"checkpoint {ref}", store)
    ids = read_splits(data, store=store).get(split) or []
    if not ids:
        raise UserError(f"split {split!r} has no videos")
    task = task_of(cfg)
    if task.name == "matching":  # captions and vocabulary from --data; VSE++ protocols
        return evaluate_matching([ref], store, data, split, tracking_uri)
    split_data = task.load_split(StoreReader(opened), cfg, ids, {})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    ev = evaluate(task, model.to(device), split_data, device)
    return {"checkpoint": ref, "task": task.name, "model": cfg.name, "split": split, **ev.counts,
            "best_epoch": ckpt.get("best_epoch"), "metrics": ev.metrics}


def evaluate_matching(refs: list[str], store: str, data: str | None, split: str = "test",
                      tracking_uri: str | None = None, protocol: str | None = None) -> dict:
    """Image-text matching runs/checkpoints on ``split``: one model, or an ensemble of several
    (averaged similarities), under a VSE++ protocol (f30k_1k, coco_1k, coco_5k; the config's by default)."""
    from pathlib import Path

    import torch

    from videxperts.storage.reader import StoreReader
    from videxperts.training.checkpoint import load_model_checkpoint, resolve_checkpoint
    from videxperts.training.matching.evaluation import evaluate_models
    from videxperts.training.preflight import check_config_matches_store, open_store
    from videxperts.training.splits import read_splits
    from videxperts.training.task import task_of

    if not data:
        raise UserError("matching needs --data DIR (captions.parquet: the captions and the vocabulary's source)")
    opened = open_store(store)
    ids = read_splits(data, store=store).get(split) or []
    if not ids:
        raise UserError(f"split {split!r} has no items")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    members, names = [], []
    with tempfile.TemporaryDirectory(prefix="vx-eval-") as tmp:
        for k, ref in enumerate(refs):
            cfg, model, _ = load_model_checkpoint(resolve_checkpoint(ref, tracking_uri, f"{tmp}/{k}"))
            task = task_of(cfg)
            if task.name != "matching":
                raise UserError(f"{ref}: a {task.name} model, not image-text matching")
            check_config_matches_store(cfg, opened, f"checkpoint {ref}", store)
            resources = task.worker_resources(cfg, task.data_resources(cfg, data, Path(tmp)), device)
            members.append((cfg, model.to(device), task.load_split(StoreReader(opened), cfg, ids, resources)))
            names.append(cfg.name)
        metrics = evaluate_models(members, device, protocol)
    data0 = members[0][2]
    return {"checkpoint": ",".join(refs), "task": "matching", "model": "+".join(names), "split": split,
            "images": len(data0), "captions": data0.n_captions,
            "protocol": protocol or members[0][0].eval.protocol, "metrics": metrics}
