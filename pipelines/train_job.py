"""The ``videxperts train`` job: config -> parent MLflow run -> one Ray Train job per seed.

It only orchestrates, for every task alike: the config names its task; the driver resolves the
config and the splits, lets the task check them against the store and the tracking store
(fail before training), starts Ray, creates the runs, runs the harness's runner once per seed,
and logs what each seed's final checkpoint holds (test metrics of the best validation epoch,
best weights, curves, the task's plots). Models are built by their task, never here.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from videxperts.errors import UserError

CRASH_ENV = "VIDEXPERTS_CRASH_AT_EPOCH"  # test hook: a worker hard-exits after this epoch's checkpoint
CRASH_ONCE_ENV = "VIDEXPERTS_CRASH_ONCE"  # "1": crash only the first attempt (then resume)
RESULT_ARTIFACT = "result.json"
MIN_TRAIN_VIDEOS = 2  # a batch needs two pairs  # a seed's test metrics, best epoch and history (read back on resume)


@dataclass
class TrainRequest:
    config: str | Path | dict
    store: str | None = None
    data: str | None = None
    num_workers: int = 1
    use_gpu: bool = False
    seeds: list[int] | None = None
    tracking_uri: str | None = None
    experiment: str | None = None
    epochs: int | None = None
    work_dir: str = "work"
    address: str | None = None
    max_failures: int = 1
    keep_checkpoints: bool = False  # keep finished seeds' Ray Train checkpoints (the best is logged to MLflow)
    dashboard: bool = False  # the embedded Ray serves its dashboard on 127.0.0.1
    quiet: bool = False  # no worker logs on the driver (keeps --json stdout clean)
    progress: bool = False  # a progress bar over seeds on stderr
    restart: bool = False  # new runs even if an unfinished run of the same command exists
    overrides: list[str] = field(default_factory=list)  # --set KEY=VALUE items, applied in order
    source: dict | None = None  # pre-built {"kind": "arrays", "splits": {...}} (tests, benchmarks)
    extra_params: dict = field(default_factory=dict)


def resolve_config(config: str | Path | dict, epochs: int | None = None, seed: int | None = None,
                   overrides: list[str] | tuple[str, ...] = ()) -> Any:
    """The task's typed config with command-line overrides applied (--set items, then epochs, seed)."""
    from videxperts.training.config import load_config

    cfg = load_config(config, overrides=overrides)
    if epochs is None and seed is None:
        return cfg
    d = cfg.to_dict()
    if epochs is not None:
        d["train"]["epochs"] = int(epochs)
    if seed is not None:
        d["train"]["seed"] = int(seed)
    out = load_config(d)
    return out


def init_ray(address: str | None, num_workers: int, quiet: bool = False, dashboard: bool = False,
             job_metadata: dict[str, str] | None = None) -> None:
    """Local Ray bound to 127.0.0.1 with enough CPUs for the workers (1 CPU each), or join ``--address``.

    ``job_metadata`` (``job_name``: the MLflow run's name, ``mlflow_run_id``) names this driver's
    job in Ray's dashboard and state API, so a Ray job leads to its MLflow run.
    """
    import signal

    import ray
    from ray.job_config import JobConfig

    if ray.is_initialized():
        return
    job_config = JobConfig(metadata=dict(job_metadata or {}))
    sigterm = signal.getsignal(signal.SIGTERM)
    try:
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=not quiet, job_config=job_config)
        else:  # a single-machine job: every Ray port on loopback
            from videxperts.cluster.local import init_loopback_ray

            init_loopback_ray(num_cpus=max(2, num_workers), dashboard=dashboard, log_to_driver=not quiet,
                              job_config=job_config)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - Ray's start-up failures are one line for the user
        from videxperts.errors import first_line

        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise UserError(f"could not start {where}: {first_line(exc)}") from None
    finally:  # ray.init installs a SIGTERM handler that exits: keep ours (runs end KILLED, not FAILED)
        if callable(sigterm) and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, sigterm)


def _store_source(req: TrainRequest, cfg: Any) -> dict:
    """The workers' data source; the config is checked against the store first (one line, before MLflow or Ray)."""
    from videxperts.storage._fs import absolute_store_url
    from videxperts.storage.reader import StoreReader
    from videxperts.training.preflight import check_config_matches_store, open_store
    from videxperts.training.splits import read_splits

    if not req.store:
        raise UserError("--store is required: the feature store to train on")
    config_name = str(req.config) if isinstance(req.config, (str, Path)) else "config"
    store = open_store(req.store)
    check_config_matches_store(cfg, store, config_name, req.store)
    splits = read_splits(req.data, store=req.store)
    present = set(map(str, StoreReader(store).video_ids))
    splits = {name: [v for v in ids if v in present] for name, ids in splits.items()}
    where = f"{req.data or 'the split information of'} {req.store}" if req.data else req.store
    if len(splits.get("train", [])) < MIN_TRAIN_VIDEOS:
        raise UserError(f"split 'train' has {len(splits.get('train', []))} videos in store {where}; training needs "
                        f"at least {MIN_TRAIN_VIDEOS} (extract more videos, or check the manifest's split column)")
    return {"kind": "store", "url": absolute_store_url(req.store), "splits": splits}


def _seed_artifacts(folder: Path, cfg: Any, state: dict, result: dict, arrays: dict) -> Path:
    """Everything a seed's child run keeps, written to ``folder``: config, result.json, the best
    model (``checkpoint/model.pt``), the training curve and the task's plots."""
    from videxperts.training.checkpoint import MODEL_FILE, save_model_checkpoint
    from videxperts.training.plots import training_curve
    from videxperts.training.task import task_of

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (folder / RESULT_ARTIFACT).write_text(json.dumps(result, indent=1))
    save_model_checkpoint(folder / "checkpoint" / MODEL_FILE, cfg, state)
    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    title = f"{cfg.name} seed {cfg.train.seed}"
    training_curve(result.get("history", []), plots / "training_curve.png", title)
    task_of(cfg).plots(result, arrays, plots, title)
    return folder


def ray_run_name(cfg: Any, child: str) -> str:
    """The seed's Ray Train run (and its folder under ``<work>/ray``): a function of the child run id."""
    return f"{cfg.name}-{child}"


def remove_ray_checkpoints(work: Path, cfg: Any, child: str) -> int:
    """Delete a finished seed's Ray Train run folder (epoch checkpoints); its best model is in MLflow.

    Returns the bytes freed. Only the folder this seed's run wrote is touched.
    """
    import shutil

    folder = work / "ray" / ray_run_name(cfg, child)
    if not folder.is_dir():
        return 0
    freed = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink())
    shutil.rmtree(folder, ignore_errors=True)
    return freed


def _fit_result(res: Any) -> Any:
    err = getattr(res, "error", None)
    if err is not None:
        raise RuntimeError(f"training failed: {err}") from err
    if res.checkpoint is None:
        raise RuntimeError("training finished without a checkpoint")
    return res.checkpoint


def _outcome(run_id: str, result: dict) -> dict:
    """One seed's entry in the summary, from its result.json (fresh or read back on resume)."""
    return {"run_id": run_id, "test": result.get("test", {}), "best_epoch": result["best_epoch"],
            "counts": result.get("counts", {}), "resumed_at": result.get("resumed_at", []),
            "history": result.get("history", [])}


def _train_seed(req: TrainRequest, cfg: Any, source: dict, uri: str, child: str, work: Path,
                resources: dict) -> dict:
    """One seed's Ray Train job (restored from its last checkpoint when the run is being resumed)."""
    from videxperts.training.runner import LoopOptions, read_result, run_ray_training

    crash_at = os.environ.get(CRASH_ENV)
    options = LoopOptions(
        use_gpu=req.use_gpu, mlflow_uri=uri, mlflow_run_id=child,
        crash_at_epoch=int(crash_at) if crash_at else None,
        crash_marker=str(work / f"crashed-{child}") if os.environ.get(CRASH_ONCE_ENV) == "1" else None,
    )
    # The Ray run name is a function of the child run id: re-running a killed command reopens the
    # same child run, so Ray Train finds the same run directory and resumes from its checkpoint.
    res = run_ray_training(cfg, source, options, num_workers=req.num_workers, storage_path=str(work / "ray"),
                           name=ray_run_name(cfg, child), max_failures=req.max_failures, resources=resources)
    ckpt = _fit_result(res)
    with tempfile.TemporaryDirectory(prefix="vx-res-") as tmp:
        result, state, arrays = read_result(ckpt.to_directory(tmp))
    return {**_outcome(child, result), "unlogged_epochs": result.get("unlogged_epochs", []), "_state": state,
            "_arrays": arrays}


class TrackingLost(UserError):
    """The tracking server went away during training; the seed's results were kept on disk."""


def _seed_metrics(cfg: Any, outcome: dict) -> list[tuple[str, float, int]]:
    """The epoch rows the workers could not log, then the final test metrics (step = epochs)."""
    from videxperts.training.tracking import result_keys

    rows = [(k, float(v), int(row["epoch"])) for row in outcome.get("history", [])
            if row["epoch"] in set(outcome.get("unlogged_epochs", []))
            for k, v in row.items() if k != "epoch" and isinstance(v, int | float)]
    final = {**result_keys("test", outcome["test"]), "best_epoch": float(outcome["best_epoch"])}
    rows += [(k, float(v), int(cfg.train.epochs)) for k, v in final.items()]
    return [r for r in rows if math.isfinite(r[1])]


def _log_seed(client: Any, child: str, cfg: Any, outcome: dict, uri: str, work: Path) -> None:
    """Metrics and artifacts of a finished seed; drops the in-memory parts.

    If the tracking server is gone, nothing is lost: the model, metrics and plots go to
    ``<work>/mlflow-unsent/<child>`` and the command stops with one line saying how to send them.
    """
    from mlflow.entities import Metric

    from videxperts.training import tracking
    from videxperts.training.outbox import save_unsent_run

    state, arrays = outcome.pop("_state"), outcome.pop("_arrays")
    metrics = _seed_metrics(cfg, outcome)
    with tempfile.TemporaryDirectory(prefix="vx-art-") as tmp:
        folder = _seed_artifacts(Path(tmp) / "artifacts", cfg, state, outcome, arrays)
        try:
            now = int(time.time() * 1000)
            items = [Metric(k, v, now, step) for k, v, step in metrics]
            for i in range(0, len(items), 1000):
                client.log_batch(child, metrics=items[i : i + 1000])
            for item in sorted(folder.iterdir()):
                if item.is_dir():
                    client.log_artifacts(child, str(item), item.name)
                else:
                    client.log_artifact(child, str(item))
            from videxperts.pipelines.train_context import log_pytorch_model
            from videxperts.training.checkpoint import MODEL_FILE

            log_pytorch_model(client, child, folder / "checkpoint" / MODEL_FILE)  # registry-ready copy
        except Exception as exc:
            try:
                tracking.check_tracking(uri, timeout_s=3.0)
            except tracking.TrackingUnavailable:
                path = save_unsent_run(work, child, uri, status="FINISHED", error=str(exc).splitlines()[0][:300],
                                       metrics=metrics, artifacts=folder)
                raise TrackingLost(
                    f"tracking server {uri} went away: seed {cfg.train.seed}'s model, metrics and plots are kept "
                    f"in {path.parent}; when it is back, re-run this command (sent first, then the remaining "
                    f"seeds resume) or run `videxperts replay --work-dir {work}`") from None
            raise


def _finished_seed(run: Any, uri: str) -> dict:
    """What a seed that already finished (in the interrupted command) logged: its result.json."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="vx-done-") as tmp:
        path = download_artifacts(run_id=run.info.run_id, artifact_path=RESULT_ARTIFACT, dst_path=tmp,
                                  tracking_uri=uri)
        result = json.loads(Path(path).read_text())
    return _outcome(run.info.run_id, result)


def _send_unsent(work: Path, uri: str, quiet: bool) -> None:
    """Results an earlier command could not send (tracking outage) go first, so resume reads them back."""
    from videxperts.training.outbox import pending_documents, replay_document

    for path in pending_documents(work, uri):
        run_id = replay_document(path)
        if not quiet:
            print(f"sent the results that run {run_id} could not send earlier ({path.name})", file=sys.stderr)


def run_train(req: TrainRequest) -> dict:
    """Run the whole command; returns a summary (run ids, per-seed and mean/std test metrics)."""
    from mlflow.tracking import MlflowClient

    from videxperts.pipelines import train_context
    from videxperts.pipelines.progress import EpochWatcher, status
    from videxperts.storage._fs import absolute_store_url
    from videxperts.training import tracking
    from videxperts.training.describe import describe_model
    from videxperts.training.task import task_of

    work = Path(req.work_dir).resolve()
    # A tracking server that goes away must cost seconds per call, not MLflow's minutes of retries
    # (the Ray workers inherit these); users' own settings win.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    if req.address is None:
        train_context.check_gpu_request(req.use_gpu, None, req.num_workers)  # before anything starts
    base_cfg = resolve_config(req.config, req.epochs, overrides=req.overrides)
    base_cfg = task_of(base_cfg).with_data(base_cfg, req.data)  # e.g. captioning: captions and vocabulary
    source = req.source or _store_source(req, base_cfg)  # bad config/store/splits fail here, nothing created
    task_of(base_cfg).check_resources(base_cfg)  # e.g. teacher checkpoints given by path
    ctx = train_context.run_context(req, base_cfg, source)  # provenance, split sizes, run name
    train_context.print_warnings(ctx.warnings, req.quiet and not req.progress)
    work.mkdir(parents=True, exist_ok=True)
    seeds = req.seeds if req.seeds else [int(base_cfg.train.seed)]
    uri = tracking.resolve_tracking_uri(work, req.tracking_uri)
    tracking.check_tracking(uri)
    task = task_of(base_cfg)
    base_cfg = task.resolve_references(base_cfg, uri, work)  # e.g. a critic given by its run id
    resources = task.driver_resources(base_cfg, uri, work)  # e.g. teachers: unreadable ones fail here
    if req.data:
        resources.update(task.data_resources(base_cfg, req.data, work))  # e.g. captions, a rebuilt vocabulary
    _send_unsent(work, uri, req.quiet and not req.progress)
    client = MlflowClient(uri)
    exp_id = tracking.ensure_experiment(client, req.experiment or tracking.DEFAULT_EXPERIMENT,
                                        tracking.artifact_root(work) if tracking.is_local_uri(uri) else None)
    train_context.set_experiment_kind(client, exp_id)
    n_params = describe_model(base_cfg)["parameters"]  # on the meta device: no memory for published sizes
    tags = {**tracking.base_tags(), "model.name": base_cfg.name, tracking.TASK_TAG: base_cfg.task,
            "model.parameters": str(n_params), **task.run_tags(base_cfg), **ctx.tags}
    params = {k: v for k, v in base_cfg.flatten().items() if k != "train.seed"}
    params.update({"store": absolute_store_url(req.store) if req.store else "<arrays>",
                   "data": str(Path(req.data).resolve()) if req.data else "", **ctx.params, **task.run_params(base_cfg),
                   "num_workers": req.num_workers, "use_gpu": req.use_gpu, "seeds": ",".join(map(str, seeds)),
                   **req.extra_params})
    if req.overrides:  # the values are in the flattened config; this says which came from the command line
        params["overrides"] = " ".join(req.overrides)
    key = tracking.resume_key({"experiment": exp_id, "params": params, "tracking": uri,
                               "source": source.get("url") or source.get("kind")})
    resumable = None if req.restart else tracking.find_unfinished_run(client, exp_id, key)
    summary: dict[str, Any] = {"experiment_id": exp_id, "tracking_uri": uri, "task": base_cfg.task, "seeds": {},
                               "experiment": req.experiment or tracking.DEFAULT_EXPERIMENT,
                               "parameters": n_params, "resumed": resumable is not None}
    with tracking.terminate_as_interrupt():
        if resumable is not None:
            parent = tracking.reopen_run(client, resumable.info.run_id)
            children = tracking.child_runs_by_seed(client, exp_id, parent)
            if not req.quiet or req.progress:
                print(f"resuming the unfinished run {parent} of this command (--restart starts over)",
                      file=sys.stderr)
        else:
            parent = tracking.start_run(client, exp_id, ctx.name,
                                        {**tags, tracking.KIND_TAG: "train", tracking.RESUME_TAG: key})
            children = {}
        summary["parent_run_id"] = parent
        with tracking.run_guard(client, parent):
            if resumable is None:
                tracking.log_params(client, parent, params)
                train_context.log_dataset(client, parent, ctx)
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(base_cfg.to_dict(), sort_keys=False))
                    client.log_artifact(parent, str(Path(tmp) / "config.yaml"))
            run_name = client.get_run(parent).info.run_name
            status(f"starting Ray ({req.address or 'local'}) for {len(seeds)} seed(s) x {req.num_workers} worker(s)",
                   req.progress)
            init_ray(req.address, req.num_workers, req.quiet, dashboard=req.dashboard,
                     job_metadata={"job_name": run_name, "mlflow_run_id": parent, "mlflow_tracking_uri": uri})
            if req.address is not None:
                train_context.check_gpu_request(req.use_gpu, req.address, req.num_workers)
            per_seed = []
            for i, seed in enumerate(seeds, 1):
                cfg = resolve_config(base_cfg.to_dict(), seed=seed)
                previous = children.get(seed)
                if previous is not None and previous.info.status == "FINISHED":
                    outcome = _finished_seed(previous, uri)
                else:
                    child = (tracking.reopen_run(client, previous.info.run_id) if previous is not None else
                             tracking.start_run(client, exp_id, f"{cfg.name}-seed{seed}",
                                                {**tags, tracking.KIND_TAG: "seed", tracking.SEED_TAG: str(seed)},
                                                parent))
                    with tracking.run_guard(client, child):
                        if previous is None:
                            tracking.log_params(client, child, {**params, "train.seed": seed})
                        with EpochWatcher(client, child, int(cfg.train.epochs), f"train {cfg.name} seed {seed} "
                                          f"({i}/{len(seeds)})", task.selection.metric, enabled=req.progress):
                            outcome = _train_seed(req, cfg, source, uri, child, work, resources)
                        _log_seed(client, child, cfg, outcome, uri, work)
                        train_context.log_counts(client, child, outcome["counts"], list(outcome["test"]))
                    if not req.keep_checkpoints:  # logged: the epoch checkpoints are no longer needed
                        remove_ray_checkpoints(work, cfg, child)
                per_seed.append(tracking.result_keys("test", outcome["test"]))
                summary["seeds"][seed] = outcome
            agg = tracking.mean_std(per_seed)
            tracking.log_metrics(client, parent, agg)
            summary["aggregate"] = agg
            train_context.log_results_table(client, parent, summary)
            train_context.log_counts(client, parent, per_seed_counts(summary), list(per_seed[0]) if per_seed else [])
    return summary


def per_seed_counts(summary: dict) -> dict:
    """What the first seed scored per split (every seed scores the same videos and queries)."""
    first = next(iter(summary["seeds"].values()), {})
    return first.get("counts", {})
