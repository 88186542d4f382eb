"""The task-independent training runner: one function per worker, run by Ray Train's
TorchTrainer (DDP: gloo on CPU, NCCL on GPU) or in-process.

What makes a run reproducible and independent of the number of workers, for every task:

* The task yields *global* batches (composition depends on seed and epoch only); each worker
  takes its contiguous slice; tasks gather what their loss needs across ranks
  (:func:`~videxperts.training.distributed.gather_cat`) and DDP averages gradients.
* BatchNorm layers normalise over the global batch (:func:`~.distributed.convert_batchnorm`).
* Torch's RNG is reseeded from (seed, epoch, rank) at every epoch start, so a run resumed from
  the checkpoint of epoch k draws the same random numbers as an uninterrupted one.
* A checkpoint is reported every epoch (model, optimiser incl. Lookahead slow weights,
  scheduler, grad scaler, torch RNG, epoch, best metric, best weights, history); the last one
  also carries the test metrics of the best epoch, chosen by the task's selection metric.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from videxperts.errors import UserError
from videxperts.training.checkpoint import STATE_FILE
from videxperts.training.distributed import convert_batchnorm, to_device, tree_map, world
from videxperts.training.task import Evaluation, Task, task_of
from videxperts.training.tracking import result_keys

RESULT_FILE = "result.json"
ARRAYS_FILE = "test_arrays.npz"


def prefixed(prefix: str, metrics: Mapping[str, float]) -> dict[str, float]:
    """``{"t2v/R1": x}`` -> ``{"<prefix>/t2v/R1": x}``."""
    return {f"{prefix}/{k}": float(v) for k, v in metrics.items()}


def evaluate(task: Task, model: nn.Module, data: Any, device: torch.device) -> Evaluation:
    """``task.evaluate`` in eval mode, the model's mode restored afterwards."""
    was_training = model.training
    model.eval()
    try:
        return task.evaluate(model, data, device)
    finally:
        model.train(was_training)


def _batch_len(batch: Any) -> int:
    """Rows of a batch: the leading size of its first tensor."""
    found: list[int] = []
    tree_map(lambda t: found.append(int(t.shape[0])) if t.ndim else None, batch)
    return found[0] if found else 0


@dataclasses.dataclass
class LoopOptions:
    """Everything a worker needs besides the config and the data."""

    use_gpu: bool = False
    amp: bool = True  # only on GPU
    crash_at_epoch: int | None = None  # test hook: os._exit after this epoch's checkpoint
    crash_delay_s: float = 10.0  # test hook: seconds between that checkpoint's report and the exit
    crash_marker: str | None = None  # crash only while this file does not exist (then create it)
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None


class Reporter:
    """Where per-epoch metrics and checkpoints go: Ray Train inside a worker, a directory in-process."""

    def __init__(self, out_dir: str | None = None) -> None:
        self.out_dir = out_dir
        self.history: list[dict] = []
        self.last_checkpoint: str | None = None

    def checkpoint_in(self) -> str | None:
        return None

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        self.history.append(metrics)
        if checkpoint_dir is not None and self.out_dir is not None:
            import shutil

            dest = Path(self.out_dir) / f"checkpoint_{len(self.history):04d}"
            shutil.copytree(checkpoint_dir, dest, dirs_exist_ok=True)
            self.last_checkpoint = str(dest)


class RayReporter(Reporter):
    def checkpoint_in(self) -> str | None:
        import ray.train

        ckpt = ray.train.get_checkpoint()
        if ckpt is None:
            return None
        local = tempfile.mkdtemp(prefix="vx-resume-")
        return ckpt.to_directory(local)

    def report(self, metrics: dict, checkpoint_dir: str | None) -> None:
        import ray.train

        ckpt = ray.train.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=ckpt)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB)."""
    import resource
    import sys

    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed((seed * 1_000_003 + epoch * 1009 + rank) % (2**63))


def _state_dict_cpu(module: nn.Module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def fit(cfg: Any, splits: Mapping[str, Any], options: LoopOptions, reporter: Reporter,
        resources: Mapping[str, Any] | None = None) -> dict:
    """Train ``cfg`` on ``splits`` (train/val/test) and return the final result dict (rank 0's view).

    ``resources``: what the task's ``worker_resources`` made (TeachText teachers, ...).
    """
    task = task_of(cfg)
    resources = dict(resources or {})
    rank, size = world()
    device = torch.device("cpu")
    if options.use_gpu and torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    use_amp = options.amp and device.type == "cuda"
    seed = int(cfg.train.seed)
    torch.manual_seed(seed)

    model = convert_batchnorm(task.build_model(cfg)).to(device)
    optimizer, scheduler = task.build_optimizer(model, cfg)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step = task.step_module(model, cfg)
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        step = DistributedDataParallel(step, static_graph=True, gradient_as_bucket_view=True, **ddp_kwargs)

    val, test = splits.get("val"), splits.get("test")
    task.prepare(cfg, splits, resources, device)
    selection = task.selection

    start_epoch, best_metric, best_epoch, best_state, history = 1, selection.worst, 0, None, []
    unlogged: list[int] = []  # epochs whose row the tracking store did not take (sent later by the driver)
    resumed_at: list[int] = []  # epochs at which this run continued from a checkpoint (worker or driver restart)
    state: dict[str, Any] = {}
    resume_dir = reporter.checkpoint_in()
    if resume_dir is not None:
        state = torch.load(Path(resume_dir) / STATE_FILE, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        scaler.load_state_dict(state["scaler"])
        start_epoch = int(state["epoch"]) + 1
        best_metric, best_epoch = float(state["best_metric"]), int(state["best_epoch"])
        best_state, history = state["best_model"], list(state["history"])
        resumed_at = [*state.get("resumed_at", []), start_epoch]
        unlogged = list(state.get("unlogged_epochs", []))

    epochs = int(cfg.train.epochs)
    for epoch in range(start_epoch, epochs + 1):
        _seed_epoch(seed, epoch, rank)
        model.train()
        t0 = time.perf_counter()
        losses: dict[str, list[float]] = {}
        samples = 0
        for batch in task.epoch_batches(cfg, splits, resources, epoch, rank, size):
            batch = to_device(batch, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                named = step(batch)
            scaler.scale(named["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            for name, value in named.items():
                losses.setdefault(name, []).append(float(value.detach()))
            samples += _batch_len(batch)
        scheduler.step()
        epoch_time = time.perf_counter() - t0
        row: dict[str, Any] = {
            "epoch": epoch,
            "train/loss": float(np.mean(losses["loss"])) if losses.get("loss") else float("nan"),
            "train/epoch_time_s": epoch_time,
            "train/samples_per_s_worker": samples / epoch_time if epoch_time > 0 else 0.0,
            "train/lr": float(optimizer.param_groups[0]["lr"]),
            "train/peak_rss_mb": peak_rss_mb(),
        }
        row.update({f"train/{k}": float(np.mean(v)) for k, v in losses.items() if k != "loss"})
        if device.type == "cuda":
            row["train/peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        if val is not None and (epoch % int(cfg.train.val_every) == 0 or epoch == epochs):
            row.update(prefixed("val", evaluate(task, model, val, device).metrics))
            if selection.metric not in row:
                raise UserError(f"task {task.name!r}: selection metric {selection.metric!r} is not among the "
                                f"validation metrics ({', '.join(k for k in row if k.startswith('val/'))})")
            if selection.better(row[selection.metric], best_metric):
                best_metric, best_epoch, best_state = row[selection.metric], epoch, _state_dict_cpu(model)
        elif val is None:
            best_epoch, best_state = epoch, _state_dict_cpu(model)
        history.append(row)
        if not _log_mlflow(options, rank, row, epoch):
            unlogged.append(epoch)
        state = {
            # no copy: the state is written right away (a copy would cost one more model in RAM)
            "model": model.state_dict() if device.type == "cpu" else _state_dict_cpu(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_metric": best_metric,
            "best_epoch": best_epoch, "best_model": best_state, "history": history, "seed": seed,
            "config": cfg.to_dict(), "resumed_at": resumed_at, "unlogged_epochs": unlogged,
        }
        _report(reporter, rank, row, state)
        if options.crash_at_epoch is not None and epoch == options.crash_at_epoch and rank == 0:
            marker = options.crash_marker
            if marker is None or not Path(marker).exists():
                if marker is not None:
                    Path(marker).write_text(f"crashed after epoch {epoch}\n")
                # Ray Train's controller collects reported checkpoints by polling the workers; a worker
                # dying at once can take its queued reports with it on a loaded machine (the restart
                # then begins from scratch). Die once they have had time to be collected.
                time.sleep(options.crash_delay_s)
                os._exit(3)  # a hard kill, like an OOM-killed or preempted worker
        if task.should_stop(cfg, history):
            break

    # Model selection: test with the best validation epoch's weights.
    result: dict[str, Any] = {"best_epoch": best_epoch, "epochs": epochs, "resumed_at": resumed_at,
                              "unlogged_epochs": unlogged,
                              "selection": {"metric": selection.metric, "mode": selection.mode,
                                            "value": best_metric}}
    if state:
        state["model"] = _state_dict_cpu(model)  # the last epoch's weights, before loading the best ones
    if best_state is not None:
        model.load_state_dict(best_state)
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, dict[str, int]] = {}
    if test is not None:
        ev = evaluate(task, model, test, device)
        result["test"], arrays, counts["test"] = ev.metrics, ev.arrays, ev.counts
    if val is not None:
        ev = evaluate(task, model, val, device)
        result["val"], counts["val"] = ev.metrics, ev.counts
    result["counts"] = counts
    final = {"epoch": epochs, "final": 1, "best_epoch": best_epoch}
    final.update(result_keys("test", result.get("test", {})))
    with tempfile.TemporaryDirectory(prefix="vx-final-") as tmp:
        if rank == 0:
            torch.save(state, Path(tmp) / STATE_FILE)
            (Path(tmp) / RESULT_FILE).write_text(json.dumps({**result, "history": history}, indent=1))
            np.savez(Path(tmp) / ARRAYS_FILE, **arrays)
        reporter.report(final, tmp if rank == 0 else None)
    result["history"] = history
    result["arrays"] = arrays
    return result


def _report(reporter: Reporter, rank: int, row: dict, state: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="vx-ckpt-") as tmp:
        if rank == 0:
            torch.save(state, Path(tmp) / STATE_FILE)
        reporter.report(row, tmp if rank == 0 else None)


def _log_mlflow(options: LoopOptions, rank: int, row: dict, epoch: int) -> bool:
    """Per-epoch curves go straight to the seed's child run (rank 0 only).

    A tracking store that is gone never stops training: a server is probed first (seconds, not
    the client's minutes of retries) and a row it cannot take stays in the history; the driver
    sends it later or writes it to ``mlflow-unsent/``. Returns whether the row was logged.
    """
    if rank != 0 or not options.mlflow_run_id:
        return True
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from videxperts.training.tracking import check_tracking, is_local_uri

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, epoch) for k, v in row.items()
               if k != "epoch" and isinstance(v, int | float) and math.isfinite(float(v))]
    try:
        if options.mlflow_uri and not is_local_uri(options.mlflow_uri):
            check_tracking(options.mlflow_uri, timeout_s=3.0)
        MlflowClient(options.mlflow_uri).log_batch(options.mlflow_run_id, metrics=metrics)
        return True
    except Exception:  # noqa: BLE001 - any tracking failure: the history keeps the row
        return False


# ----------------------------------------------------------------------------- Ray Train


def load_worker_splits(cfg: Any, source: dict, resources: Mapping[str, Any]) -> dict[str, Any]:
    """Materialise the splits inside a worker: through the store reader, or given in-memory splits."""
    if source["kind"] == "arrays":
        return source["splits"]
    from videxperts.storage.reader import StoreReader

    task = task_of(cfg)
    reader = StoreReader(source["url"])
    # the split's name lets a task cap training data only (retrieval: captions per video; evaluation scores all)
    return {split: task.load_split(reader, cfg, ids, {**resources, "split": split})
            for split, ids in source["splits"].items() if ids}


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point: config = {"cfg", "source", "options", "resources"}."""
    cfg, options = config["cfg"], config["options"]
    device = torch.device("cuda" if options.use_gpu and torch.cuda.is_available() else "cpu")
    resources = task_of(cfg).worker_resources(cfg, config.get("resources") or {}, device)
    splits = load_worker_splits(cfg, config["source"], resources)
    fit(cfg, splits, options, RayReporter(), resources)


def run_ray_training(cfg: Any, source: dict, options: LoopOptions, *, num_workers: int, storage_path: str,
                     name: str, max_failures: int = 1, resources: dict | None = None) -> Any:
    """Run :func:`train_loop_per_worker` under TorchTrainer (DDP: gloo on CPU, NCCL on GPU)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "source": source, "options": options, "resources": resources or {}},
        torch_config=TorchConfig(backend="nccl" if options.use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=num_workers, use_gpu=options.use_gpu,
            resources_per_worker=None if options.use_gpu else {"CPU": 1},
        ),
        run_config=RunConfig(
            name=name, storage_path=storage_path,
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        return trainer.fit()
    except TrainingFailedError as exc:
        raise TrainingError(_root_cause(exc)) from exc


class TrainingError(UserError):
    """Ray Train gave up on a run; the message names the first worker's (or the controller's) error."""


def _root_cause(exc: Exception) -> str:
    """One line for the user instead of Ray's multi-page traceback."""
    failures = getattr(exc, "worker_failures", None) or {}
    cause = next(iter(failures.values()), None) or getattr(exc, "controller_failure", None) or exc
    while getattr(cause, "cause", None) is not None and cause.cause is not cause:  # RayTaskError wraps the user error
        cause = cause.cause
    text = str(cause).strip().splitlines()
    return f"training failed: {type(cause).__name__}: {text[-1] if text else ''}"


def read_result(checkpoint_dir: str | Path) -> tuple[dict, dict, dict[str, np.ndarray]]:
    """(result.json, state.pt, the test evaluation's arrays) of a final checkpoint directory."""
    d = Path(checkpoint_dir)
    result = json.loads((d / RESULT_FILE).read_text())
    state = torch.load(d / STATE_FILE, map_location="cpu", weights_only=True)
    arrays: dict[str, np.ndarray] = {}
    if (d / ARRAYS_FILE).exists():
        with np.load(d / ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return result, state, arrays
