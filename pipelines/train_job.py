"""The ``videxperts train`` job: config -> parent MLflow run -> one Ray Train job per seed.

It only orchestrates, for every task alike: the config names its task; the driver resolves the
config and the splits, lets the task check them against the store and the tracking store
(fail before training), starts Ray, creates the runs, runs the harness's runner once per seed,
and logs what each seed's final checkpoint holds (test metrics of the best validation epoch,
best weights, curves, the task's plots). Models are built by their task, never here.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from tqdm import tqdm

from videxperts.errors import UserError

CRASH_ENV = "VIDEXPERTS_CRASH_AT_EPOCH"  # test hook: a worker hard-exits after this epoch's checkpoint
CRASH_ONCE_ENV = "VIDEXPERTS_CRASH_ONCE"  # "1": crash only the first attempt (then resume)
RESULT_ARTIFACT = "result.json"  # a seed's test metrics, best epoch and history (read back on resume)


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
    quiet: bool = False  # no worker logs on the driver (keeps --json stdout clean)
    progress: bool = False  # a progress bar over seeds on stderr
    restart: bool = False  # new runs even if an unfinished run of the same command exists
    source: dict | None = None  # pre-built {"kind": "arrays", "splits": {...}} (tests, benchmarks)
    extra_params: dict = field(default_factory=dict)


def resolve_config(config: str | Path | dict, epochs: int | None = None, seed: int | None = None) -> Any:
    """The task's typed config with command-line overrides applied (epochs, seed)."""
    from videxperts.training.config import load_config

    cfg = load_config(config)
    if epochs is None and seed is None:
        return cfg
    d = cfg.to_dict()
    if epochs is not None:
        d["train"]["epochs"] = int(epochs)
    if seed is not None:
        d["train"]["seed"] = int(seed)
    out = load_config(d)
    return out


def init_ray(address: str | None, num_workers: int, quiet: bool = False) -> None:
    """Local Ray with enough CPUs for the workers (1 CPU each), or join ``--address``."""
    import ray

    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, include_dashboard=False, log_to_driver=not quiet)
    else:
        ray.init(num_cpus=max(2, num_workers), include_dashboard=False, log_to_driver=not quiet)


def _store_source(req: TrainRequest, cfg: Any) -> dict:
    """The workers' data source; the config is checked against the store first (one line, before MLflow or Ray)."""
    from videxperts.storage._fs import absolute_store_url
    from videxperts.training.preflight import check_config_matches_store, open_store
    from videxperts.training.splits import read_splits

    if not req.store:
        raise UserError("--store is required: the feature store to train on")
    config_name = str(req.config) if isinstance(req.config, (str, Path)) else "config"
    check_config_matches_store(cfg, open_store(req.store), config_name, req.store)
    splits = read_splits(req.data, store=req.store)
    if not splits.get("train"):
        raise UserError(f"no training videos in the split information of {req.data or req.store}")
    return {"kind": "store", "url": absolute_store_url(req.store), "splits": splits}


def _child_artifacts(client: Any, run_id: str, cfg: Any, state: dict, result: dict, arrays: dict) -> None:
    from videxperts.training.checkpoint import MODEL_FILE, save_model_checkpoint
    from videxperts.training.plots import training_curve
    from videxperts.training.task import task_of

    with tempfile.TemporaryDirectory(prefix="vx-art-") as tmp:
        t = Path(tmp)
        (t / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        client.log_artifact(run_id, str(t / "config.yaml"))
        (t / RESULT_ARTIFACT).write_text(json.dumps(result, indent=1))
        client.log_artifact(run_id, str(t / RESULT_ARTIFACT))
        ckdir = t / "checkpoint"
        save_model_checkpoint(ckdir / MODEL_FILE, cfg, state)
        client.log_artifacts(run_id, str(ckdir), "checkpoint")
        plots = t / "plots"
        plots.mkdir()
        title = f"{cfg.name} seed {cfg.train.seed}"
        training_curve(result.get("history", []), plots / "training_curve.png", title)
        task_of(cfg).plots(result, arrays, plots, title)
        client.log_artifacts(run_id, str(plots), "plots")


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
                           name=f"{cfg.name}-{child}", max_failures=req.max_failures, resources=resources)
    ckpt = _fit_result(res)
    with tempfile.TemporaryDirectory(prefix="vx-res-") as tmp:
        result, state, arrays = read_result(ckpt.to_directory(tmp))
    return {**_outcome(child, result), "_state": state, "_arrays": arrays}


def _log_seed(client: Any, child: str, cfg: Any, outcome: dict) -> None:
    """Final test metrics, result.json, best weights and plots of one seed; drops the in-memory parts."""
    from videxperts.training import tracking
    from videxperts.training.runner import prefixed

    final = {**prefixed("test", outcome["test"]), "best_epoch": float(outcome["best_epoch"])}
    tracking.log_metrics(client, child, final, step=int(cfg.train.epochs))
    state, arrays = outcome.pop("_state"), outcome.pop("_arrays")
    _child_artifacts(client, child, cfg, state, outcome, arrays)


def _finished_seed(run: Any, uri: str) -> dict:
    """What a seed that already finished (in the interrupted command) logged: its result.json."""
    from mlflow.artifacts import download_artifacts

    with tempfile.TemporaryDirectory(prefix="vx-done-") as tmp:
        path = download_artifacts(run_id=run.info.run_id, artifact_path=RESULT_ARTIFACT, dst_path=tmp,
                                  tracking_uri=uri)
        result = json.loads(Path(path).read_text())
    return _outcome(run.info.run_id, result)


def run_train(req: TrainRequest) -> dict:
    """Run the whole command; returns a summary (run ids, per-seed and mean/std test metrics)."""
    from mlflow.tracking import MlflowClient

    from videxperts.training import tracking
    from videxperts.training.describe import describe_model
    from videxperts.training.runner import prefixed
    from videxperts.training.task import task_of

    work = Path(req.work_dir).resolve()
    base_cfg = resolve_config(req.config, req.epochs)
    source = req.source or _store_source(req, base_cfg)  # bad config/store/splits fail here, nothing created
    work.mkdir(parents=True, exist_ok=True)
    seeds = req.seeds if req.seeds else [int(base_cfg.train.seed)]
    uri = tracking.resolve_tracking_uri(work, req.tracking_uri)
    tracking.check_tracking(uri)
    client = MlflowClient(uri)
    exp_id = tracking.ensure_experiment(client, req.experiment or tracking.DEFAULT_EXPERIMENT,
                                        tracking.artifact_root(work) if tracking.is_local_uri(uri) else None)
    task = task_of(base_cfg)
    n_params = describe_model(base_cfg)["parameters"]  # on the meta device: no memory for published sizes
    tags = {**tracking.base_tags(), "model.name": base_cfg.name, tracking.TASK_TAG: task.name,
            "model.parameters": str(n_params), **task.run_tags(base_cfg)}
    params = {k: v for k, v in base_cfg.flatten().items() if k != "train.seed"}
    params.update({"store": req.store or "<arrays>", "data": req.data or "", **task.run_params(base_cfg),
                   "num_workers": req.num_workers, "use_gpu": req.use_gpu, "seeds": ",".join(map(str, seeds)),
                   **req.extra_params})
    resources = task.driver_resources(base_cfg, uri, work)
    key = tracking.resume_key({"experiment": exp_id, "params": params, "tracking": uri,
                               "source": source.get("url") or source.get("kind")})
    resumable = None if req.restart else tracking.find_unfinished_run(client, exp_id, key)
    summary: dict[str, Any] = {"experiment_id": exp_id, "tracking_uri": uri, "task": task.name, "seeds": {},
                               "parameters": n_params, "resumed": resumable is not None}
    with tracking.terminate_as_interrupt():
        if resumable is not None:
            parent = tracking.reopen_run(client, resumable.info.run_id)
            children = tracking.child_runs_by_seed(client, exp_id, parent)
            if not req.quiet or req.progress:
                print(f"resuming the unfinished run {parent} of this command (--restart starts over)",
                      file=sys.stderr)
        else:
            parent = tracking.start_run(client, exp_id, base_cfg.name,
                                        {**tags, tracking.KIND_TAG: "train", tracking.RESUME_TAG: key})
            children = {}
        summary["parent_run_id"] = parent
        with tracking.run_guard(client, parent):
            if resumable is None:
                tracking.log_params(client, parent, params)
                with tempfile.TemporaryDirectory() as tmp:
                    (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(base_cfg.to_dict(), sort_keys=False))
                    client.log_artifact(parent, str(Path(tmp) / "config.yaml"))
            init_ray(req.address, req.num_workers, req.quiet)
            per_seed = []
            for seed in tqdm(seeds, desc=f"train {base_cfg.name}", unit="seed", disable=not req.progress,
                             file=sys.stderr):
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
                        outcome = _train_seed(req, cfg, source, uri, child, work, resources)
                        _log_seed(client, child, cfg, outcome)
                per_seed.append(prefixed("test", outcome["test"]))
                summary["seeds"][seed] = outcome
            agg = tracking.mean_std(per_seed)
            tracking.log_metrics(client, parent, agg)
            summary["aggregate"] = agg
    return summary
