"""The training loop: one function per worker, run by Ray Train's TorchTrainer (or in-process).

Design choices that make a run reproducible and independent of the number of workers:

* The sampler yields *global* batches (``training.data.GlobalBatchSampler``); each worker
  encodes its contiguous slice; the embeddings are all-gathered with a differentiable
  all-gather, so every worker computes the ranking loss over the whole B×B batch. DDP then
  averages gradients, which equals the single-worker gradient of the same batch loss.
* BatchNorm layers are replaced by :class:`GatheredBatchNorm`, which normalises with the
  statistics of the gathered global batch (torch's SyncBatchNorm is GPU-only; this one also
  works on CPU/gloo). The state-dict keys stay those of ``nn.BatchNorm*``.
* Torch's RNG is reseeded from (seed, epoch, rank) at every epoch start, so a run resumed from
  the checkpoint of epoch k draws the same random numbers as an uninterrupted one.
* A checkpoint is reported every epoch (model, optimiser incl. Lookahead slow weights,
  scheduler, grad scaler, torch RNG, epoch, best metric, best weights, history); the last one
  also carries the test metrics of the best epoch (model selection: validation t2v Geom).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
import time
import types
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from pipelines.errors import UserError
from training.data import GlobalBatchSampler, SplitData

STATE_FILE = "state.pt"
RESULT_FILE = "result.json"
RANKS_FILE = "test_ranks.npy"
SELECTION_METRIC = "val/t2v/Geom"


# ----------------------------------------------------------------------------- tree utils


def tree_map(fn: Callable[[torch.Tensor], Any], obj: Any) -> Any:
    """Apply ``fn`` to every tensor in nested dicts / lists / tuples / dataclasses."""
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: tree_map(fn, v) for k, v in obj.items()}
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(tree_map(fn, v) for v in obj))
    if isinstance(obj, list | tuple):
        return type(obj)(tree_map(fn, v) for v in obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.replace(obj, **{f.name: tree_map(fn, getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    return obj


def tree_cat(parts: list[Any]) -> Any:
    """Concatenate structurally identical trees along dim 0."""
    first = parts[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(parts, dim=0)
    if isinstance(first, dict):
        return {k: tree_cat([p[k] for p in parts]) for k in first}
    if isinstance(first, tuple) and hasattr(first, "_fields"):
        return type(first)(*(tree_cat([p[i] for p in parts]) for i in range(len(first))))
    if isinstance(first, list | tuple):
        return type(first)(tree_cat([p[i] for p in parts]) for i in range(len(first)))
    if dataclasses.is_dataclass(first) and not isinstance(first, type):
        return dataclasses.replace(
            first, **{f.name: tree_cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(first)}
        )
    return first


# ----------------------------------------------------------------------------- distributed


def world() -> tuple[int, int]:
    """(rank, world size) of the default process group, (0, 1) without one."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _gather_sizes(n_local: int, device: torch.device) -> list[int]:
    size = world()[1]
    n = torch.tensor([n_local], device=device)
    sizes = [torch.zeros_like(n) for _ in range(size)]
    dist.all_gather(sizes, n)
    return [int(s.item()) for s in sizes]


def gather_cat(x: torch.Tensor, differentiable: bool = True, sizes: list[int] | None = None) -> torch.Tensor:
    """All-gather ``x`` along dim 0 from every rank (sizes may differ by rank), in rank order.

    The differentiable variant sums the incoming gradients in backward, so the gradient that
    reaches each rank's slice is the sum over ranks of the (identical) batch losses; DDP's
    averaging then yields exactly the gradient of one batch loss.
    """
    size = world()[1]
    if size == 1:
        return x
    sizes = sizes or _gather_sizes(x.shape[0], x.device)
    longest = max(sizes)
    if x.shape[0] < longest:
        pad = x.new_zeros((longest - x.shape[0], *x.shape[1:]))
        x = torch.cat([x, pad], dim=0)
    if differentiable:
        import warnings

        from torch.distributed.nn.functional import all_gather

        with warnings.catch_warnings():  # deprecated in favour of a private API; still the public one
            warnings.simplefilter("ignore", FutureWarning)
            parts = list(all_gather(x.contiguous()))
    else:
        parts = [torch.empty_like(x) for _ in range(size)]
        dist.all_gather(parts, x.contiguous())
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)], dim=0)


def _gathered_bn_forward(self: nn.modules.batchnorm._BatchNorm, x: torch.Tensor,
                         mask: torch.Tensor | None = None) -> torch.Tensor:
    """BatchNorm statistics of the *global* batch (all ranks), the local rows back.

    Serves ``nn.BatchNorm*`` and ``MaskedBatchNorm1d`` (rows outside ``mask`` neither enter
    the statistics nor come back non-zero). Ranks concatenate in rank order, which is the
    order of the single-worker batch, so one worker and N workers compute the same numbers.
    Every rank takes the same branch (decided on global row counts): no collective mismatch.
    """
    cls_forward = type(self).forward
    rank, size = world()
    if size == 1 or not self.training:
        return cls_forward(self, x) if mask is None else cls_forward(self, x, mask)
    rows = x if mask is None else x[mask.reshape(-1).to(torch.bool)]
    sizes = _gather_sizes(rows.shape[0], x.device)
    total, offset = sum(sizes), sum(sizes[:rank])
    if total >= 2:
        everything = gather_cat(rows, sizes=sizes)
        normed = nn.modules.batchnorm._BatchNorm.forward(self, everything)[offset : offset + rows.shape[0]]
    elif total == 1:  # one valid row in the whole batch: no batch statistic exists
        normed = F.batch_norm(rows, self.running_mean, self.running_var, self.weight, self.bias,
                              False, 0.0, self.eps)
    else:
        normed = rows
    if self.affine:  # keep weight/bias in the graph on every rank (DDP static graph)
        normed = normed + 0.0 * (self.weight.sum() + self.bias.sum())
    if mask is None:
        return normed
    out = x.new_zeros(x.shape)
    out[mask.reshape(-1).to(torch.bool)] = normed.to(out.dtype)
    return out


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Make every BatchNorm (incl. ``MaskedBatchNorm1d``) normalise over the global batch.

    torch's SyncBatchNorm is GPU-only; this works on gloo/CPU and NCCL/GPU alike. The
    module classes and state-dict keys are unchanged (only the instances' ``forward`` is
    rebound), so checkpoints load into a plain model. One worker: plain BatchNorm.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.forward = types.MethodType(_gathered_bn_forward, m)
    return module


# ----------------------------------------------------------------------------- model glue


def build_model(cfg: Any) -> nn.Module:
    """The model of ``cfg`` (training.models.build_model), imported late so tests load fast."""
    from training.models import build_model as _build

    return _build(cfg)


def ranking_loss(sims: torch.Tensor, margin: float) -> torch.Tensor:
    from training.losses import max_margin_ranking_loss

    return max_margin_ranking_loss(sims, margin)


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    from training.losses import distillation_loss as _distill

    return _distill(student, teacher)


def _to(obj: Any, device: torch.device) -> Any:
    return tree_map(lambda t: t.to(device, non_blocking=True), obj)


def encode_videos(model: nn.Module, data: SplitData, idx: np.ndarray, device: torch.device,
                  experts: list[str] | None = None) -> Any:
    """``model.encode_video`` on videos ``idx`` (optionally restricted to a subset of experts)."""
    feats, masks, avail = data.video_batch(idx)
    if experts is not None:
        cols = [data.expert_names.index(e) for e in experts]
        feats = {e: feats[e] for e in experts}
        masks = {e: m for e, m in masks.items() if e in experts}
        avail = avail[:, cols]
    return model.encode_video(_to(feats, device), _to(masks, device), avail.to(device))


def encode_captions(model: nn.Module, data: SplitData, vid: np.ndarray, cap: np.ndarray, device: torch.device,
                    encoder: str | None = None) -> Any:
    tokens, mask = data.text_batch(vid, cap, encoder)
    return model.encode_text(tokens.to(device), mask.to(device))


class TrainStep(nn.Module):
    """The whole per-batch loss in one ``forward`` so that DDP sees every parameter use."""

    def __init__(self, model: nn.Module, margin: float) -> None:
        super().__init__()
        self.model = model
        self.margin = margin

    def forward(self, video_inputs: tuple, text_inputs: tuple,
                teacher_sims: torch.Tensor | None = None, distill_weight: float = 0.0) -> tuple[torch.Tensor, ...]:
        video = self.model.encode_video(*video_inputs)
        text = self.model.encode_text(*text_inputs)
        video_all = tree_map(gather_cat, video)
        text_all = tree_map(gather_cat, text)
        sims = self.model.similarity(text_all, video_all).float()
        rank_loss = ranking_loss(sims, self.margin)
        loss = rank_loss
        distill = torch.zeros((), device=sims.device)
        if teacher_sims is not None:
            distill = distillation_loss(sims, teacher_sims.float())
            loss = loss + distill_weight * distill
        return loss, rank_loss.detach(), distill.detach()


# ----------------------------------------------------------------------------- evaluation


@torch.no_grad()
def split_similarities(model: nn.Module, data: SplitData, device: torch.device, chunk: int = 256,
                       keep: np.ndarray | None = None) -> tuple[torch.Tensor, np.ndarray]:
    """Caption×video similarities of a split (every valid caption against every video)."""
    was_training = model.training
    model.eval()
    try:
        n = len(data)
        video = tree_cat([encode_videos(model, data, np.arange(s, min(s + chunk, n)), device)
                          for s in range(0, n, chunk)])
        cap_video, cap_idx = data.captions(keep)
        rows = []
        for s in range(0, len(cap_video), chunk):
            text = encode_captions(model, data, cap_video[s : s + chunk], cap_idx[s : s + chunk], device)
            rows.append(model.similarity(text, video).float().cpu())
        sims = torch.cat(rows, dim=0) if rows else torch.zeros((0, n))
        return sims, cap_video
    finally:
        model.train(was_training)


def t2v_ranks(sims: torch.Tensor, caption_video: np.ndarray) -> np.ndarray:
    """0-based rank of each caption's own video, ties averaged (training.metrics' semantics)."""
    from training.metrics import retrieval_ranks

    return retrieval_ranks(sims, caption_video)[0].double().numpy()


def evaluate_split(model: nn.Module, data: SplitData, device: torch.device) -> tuple[dict, np.ndarray]:
    """Retrieval metrics ({"t2v": ..., "v2t": ...}) and t2v ranks of a split."""
    from training.metrics import retrieval_metrics

    sims, cap_video = split_similarities(model, data, device)
    metrics = retrieval_metrics(sims.numpy(), cap_video)
    return _plain(metrics), t2v_ranks(sims, cap_video)


def _plain(metrics: dict) -> dict:
    return {d: {k: float(v) for k, v in m.items()} for d, m in metrics.items()}


def flat_metrics(prefix: str, metrics: dict) -> dict[str, float]:
    """``{"t2v": {"R1": x}}`` -> ``{"<prefix>/t2v/R1": x}``."""
    return {f"{prefix}/{d}/{k}": float(v) for d, m in metrics.items() for k, v in m.items()}


# ----------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class LoopOptions:
    """Everything a worker needs besides the config and the data."""

    use_gpu: bool = False
    amp: bool = True  # only on GPU
    crash_at_epoch: int | None = None  # test hook: os._exit after this epoch's checkpoint
    crash_marker: str | None = None  # crash only while this file does not exist (then create it)
    mlflow_uri: str | None = None
    mlflow_run_id: str | None = None
    eval_chunk: int = 256


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


def fit(cfg: Any, splits: dict[str, SplitData], options: LoopOptions, reporter: Reporter,
        teachers: list | None = None) -> dict:
    """Train ``cfg`` on ``splits`` (train/val/test) and return the final result dict (rank 0's view).

    ``teachers``: a list of ``training.teachtext.Teacher`` (TeachText); ``cfg.teachtext`` gives
    the distillation weight and the optional denoising threshold.
    """
    from training.optim import build_optimizer, build_scheduler

    rank, size = world()
    device = torch.device("cpu")
    if options.use_gpu and torch.cuda.is_available():
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    use_amp = options.amp and device.type == "cuda"
    seed = int(cfg.train.seed)
    torch.manual_seed(seed)

    model = convert_batchnorm(build_model(cfg)).to(device)
    optimizer = build_optimizer(model.parameters(), cfg.optim)
    scheduler = build_scheduler(optimizer, cfg.optim)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    step = TrainStep(model, float(cfg.loss.margin))
    if size > 1:
        from torch.nn.parallel import DistributedDataParallel

        ddp_kwargs = {"device_ids": [device.index]} if device.type == "cuda" else {}
        step = DistributedDataParallel(step, static_graph=True, gradient_as_bucket_view=True, **ddp_kwargs)

    train, val, test = splits["train"], splits.get("val"), splits.get("test")
    tt = cfg.teachtext
    keep = None
    if teachers and tt is not None and tt.denoise is not None:
        from training.teachtext import denoise_mask

        keep = denoise_mask(teachers, train, tt.denoise.threshold, device)
    sampler = GlobalBatchSampler(train.caption_mask, cfg.train.batch_size, seed, keep=keep)

    start_epoch, best_metric, best_epoch, best_state, history = 1, -math.inf, 0, None, []
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

    epochs = int(cfg.train.epochs)
    for epoch in range(start_epoch, epochs + 1):
        _seed_epoch(seed, epoch, rank)
        model.train()
        t0 = time.perf_counter()
        losses, distills, samples = [], [], 0
        for vid, cap in sampler.shards(epoch, rank, size):
            feats, masks, avail = train.video_batch(vid)
            video_inputs = (_to(feats, device), _to(masks, device), avail.to(device))
            text_inputs = tuple(t.to(device) for t in train.text_batch(vid, cap))
            teacher_sims = None
            if teachers:
                from training.teachtext import teacher_similarities

                teacher_sims = teacher_similarities(teachers, train, vid, cap, device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                loss, rank_loss, distill = step(video_inputs, text_inputs, teacher_sims,
                                                float(tt.weight) if tt is not None else 0.0)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(float(loss.detach()))
            distills.append(float(distill))
            samples += len(vid)
        scheduler.step()
        epoch_time = time.perf_counter() - t0
        row: dict[str, Any] = {
            "epoch": epoch,
            "train/loss": float(np.mean(losses)) if losses else float("nan"),
            "train/epoch_time_s": epoch_time,
            "train/samples_per_s_worker": samples / epoch_time if epoch_time > 0 else 0.0,
            "lr": float(optimizer.param_groups[0]["lr"]),
            "train/peak_rss_mb": peak_rss_mb(),
        }
        if device.type == "cuda":
            row["train/peak_gpu_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
        if teachers:
            row["train/distill"] = float(np.mean(distills)) if distills else 0.0
        if val is not None and (epoch % int(cfg.train.val_every) == 0 or epoch == epochs):
            val_metrics, _ = evaluate_split(model, val, device)
            row.update(flat_metrics("val", val_metrics))
            if row[SELECTION_METRIC] > best_metric:
                best_metric, best_epoch, best_state = row[SELECTION_METRIC], epoch, _state_dict_cpu(model)
        elif val is None:
            best_epoch, best_state = epoch, _state_dict_cpu(model)
        history.append(row)
        _log_mlflow(options, rank, row, epoch)
        state = {
            # no copy: the state is written right away (a copy would cost one more model in RAM)
            "model": model.state_dict() if device.type == "cpu" else _state_dict_cpu(model),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
            "torch_rng": torch.get_rng_state(), "epoch": epoch, "best_metric": best_metric,
            "best_epoch": best_epoch, "best_model": best_state, "history": history, "seed": seed,
            "config": cfg.to_dict(), "resumed_at": resumed_at,
        }
        _report(reporter, rank, row, state)
        if options.crash_at_epoch is not None and epoch == options.crash_at_epoch and rank == 0:
            marker = options.crash_marker
            if marker is None or not Path(marker).exists():
                if marker is not None:
                    Path(marker).write_text(f"crashed after epoch {epoch}\n")
                os._exit(3)  # a hard kill, like an OOM-killed or preempted worker

    # Model selection: test with the best validation epoch's weights.
    result: dict[str, Any] = {"best_epoch": best_epoch, "best_val_geom": best_metric, "epochs": epochs,
                              "resumed_at": resumed_at}
    if state:
        state["model"] = _state_dict_cpu(model)  # the last epoch's weights, before loading the best ones
    if best_state is not None:
        model.load_state_dict(best_state)
    ranks = np.zeros(0)
    if test is not None:
        test_metrics, ranks = evaluate_split(model, test, device)
        result["test"] = test_metrics
    if val is not None:
        result["val"] = evaluate_split(model, val, device)[0]
    final = {"epoch": epochs, "final": 1, "best_epoch": best_epoch}
    final.update(flat_metrics("test", result.get("test", {})))
    with tempfile.TemporaryDirectory(prefix="vx-final-") as tmp:
        if rank == 0:
            torch.save(state, Path(tmp) / STATE_FILE)
            (Path(tmp) / RESULT_FILE).write_text(json.dumps({**result, "history": history}, indent=1))
            np.save(Path(tmp) / RANKS_FILE, ranks)
        reporter.report(final, tmp if rank == 0 else None)
    result["history"] = history
    result["ranks"] = ranks
    return result


def _report(reporter: Reporter, rank: int, row: dict, state: dict) -> None:
    with tempfile.TemporaryDirectory(prefix="vx-ckpt-") as tmp:
        if rank == 0:
            torch.save(state, Path(tmp) / STATE_FILE)
        reporter.report(row, tmp if rank == 0 else None)


def _log_mlflow(options: LoopOptions, rank: int, row: dict, epoch: int) -> None:
    """Per-epoch curves go straight to the seed's child run (rank 0 only)."""
    if rank != 0 or not options.mlflow_run_id:
        return
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    now = int(time.time() * 1000)
    metrics = [Metric(k, float(v), now, epoch) for k, v in row.items()
               if k != "epoch" and isinstance(v, int | float) and math.isfinite(float(v))]
    MlflowClient(options.mlflow_uri).log_batch(options.mlflow_run_id, metrics=metrics)


# ----------------------------------------------------------------------------- Ray Train


def load_splits_for_worker(source: dict, cfg: Any, teacher_encoders: Iterable[str] = ()) -> dict[str, SplitData]:
    """Materialise the splits inside a worker: from the store (through the reader) or given arrays."""
    if source["kind"] == "arrays":
        return source["splits"]
    from storage.reader import StoreReader
    from training.data import load_split

    reader = StoreReader(source["url"])
    out = {}
    for split, ids in source["splits"].items():
        if not ids:
            continue
        out[split] = load_split(reader, cfg, ids)
    ts = cfg.data.text
    for enc in teacher_encoders:
        if enc != ts.encoder and "train" in out:
            out["train"].add_text(enc, reader.load_text(enc, out["train"].video_ids,
                                                        max_captions=ts.max_captions, max_tokens=ts.max_tokens))
    return out


def train_loop_per_worker(config: dict) -> None:
    """Ray Train entry point: config = {"cfg", "source", "options", "teachers"}."""
    cfg, options = config["cfg"], config["options"]
    teacher_specs = config.get("teachers") or []
    teachers = None
    if teacher_specs:
        from training.teachtext import load_teachers

        teachers = load_teachers(teacher_specs, torch.device("cuda" if options.use_gpu and torch.cuda.is_available() else "cpu"))
    splits = load_splits_for_worker(config["source"], cfg, [t.encoder for t in teachers or []])
    fit(cfg, splits, options, RayReporter(), teachers)


def run_ray_training(cfg: Any, source: dict, options: LoopOptions, *, num_workers: int, storage_path: str,
                     name: str, max_failures: int = 1, teachers: list | None = None) -> Any:
    """Run :func:`train_loop_per_worker` under TorchTrainer (DDP: gloo on CPU, NCCL on GPU)."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig, TrainingFailedError
    from ray.train.torch import TorchConfig, TorchTrainer

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"cfg": cfg, "source": source, "options": options, "teachers": teachers or []},
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


def read_result(checkpoint_dir: str | Path) -> tuple[dict, dict, np.ndarray]:
    """(result.json, state.pt, test ranks) of a final checkpoint directory."""
    d = Path(checkpoint_dir)
    result = json.loads((d / RESULT_FILE).read_text())
    state = torch.load(d / STATE_FILE, map_location="cpu", weights_only=True)
    ranks = np.load(d / RANKS_FILE) if (d / RANKS_FILE).exists() else np.zeros(0)
    return result, state, ranks
