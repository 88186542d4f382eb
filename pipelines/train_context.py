"""What a ``train`` command records besides the config: provenance of the features, the
evaluation protocol, a readable run name and the MLflow view it opens in.

Kept out of :mod:`videxperts.pipelines.train_job` so the job stays an orchestrator:
:func:`run_context` is computed once, before any run is created; :func:`annotate_parent`
and :func:`annotate_seed` log what belongs to the runs.
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # MLflow 3: which UI view an experiment opens in
EXPERIMENT_KIND = "custom_model_development"  # the "Model training" view (not GenAI)
COUNTS_TAG = "videxperts.splits"


@dataclass
class RunContext:
    params: dict[str, Any] = field(default_factory=dict)  # deterministic: part of the resume key
    tags: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    name: str = ""
    dataset: dict[str, Any] | None = None  # an MLflow dataset input (name, digest, source)


def run_context(req: Any, cfg: Any, source: dict) -> RunContext:
    """Params, tags, warnings and the run name of a training command on ``source``."""
    from videxperts.training.protocol import WARNINGS_TAG, split_size_warnings

    splits = source.get("splits") or {}
    ctx = RunContext()
    sizes = {k: len(v) for k, v in splits.items()}
    ctx.params.update({f"split.{k}.videos": n for k, n in sizes.items()})
    ctx.warnings = split_size_warnings(splits)
    if ctx.warnings:
        ctx.tags[WARNINGS_TAG] = "; ".join(ctx.warnings)[:5000]
    ctx.tags[COUNTS_TAG] = ", ".join(f"{k} {n}" for k, n in sizes.items())
    if source.get("kind") == "store":
        from videxperts.pipelines.provenance_links import store_provenance
        from videxperts.training.preflight import open_store

        params, tags = store_provenance(open_store(source["url"]), source["url"])
        ctx.params.update(params)
        ctx.tags.update(tags)
        if req.data:
            ctx.params["data_uri"] = Path(req.data).resolve().as_uri()
        ctx.dataset = {"name": Path(source["url"].rstrip("/")).name, "source": params["store_uri"],
                       "digest": (params.get("manifest_sha256") or "")[7:23] or None,
                       "profile": json.dumps(sizes)}
    seeds = len(req.seeds) if req.seeds else 1
    ctx.name = (f"train {cfg.name} · {sum(sizes.values())} videos · {len(getattr(cfg.data, 'experts', {}) or {})}"
                f" experts · {seeds} seed{'s' if seeds != 1 else ''}") if hasattr(cfg, "data") else f"train {cfg.name}"
    return ctx


def print_warnings(warnings: list[str], quiet: bool) -> None:
    if not quiet:
        for w in warnings:
            print(f"videxperts: warning: {w}", file=sys.stderr)


def set_experiment_kind(client: Any, exp_id: str) -> None:
    """Open the experiment in MLflow 3's "Model training" view (it defaults to GenAI otherwise)."""
    exp = client.get_experiment(exp_id)
    if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
        client.set_experiment_tag(exp_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)


def log_dataset(client: Any, run_id: str, ctx: RunContext) -> None:
    """The store as the run's dataset input (the "Datasets used" column in the UI)."""
    if not ctx.dataset:
        return
    from mlflow.entities import Dataset, DatasetInput, InputTag

    d = ctx.dataset
    ds = Dataset(name=d["name"], digest=d["digest"] or "unknown", source_type="videxperts-store",
                 source=json.dumps({"uri": d["source"]}), profile=d["profile"])
    client.log_inputs(run_id, datasets=[DatasetInput(ds, tags=[InputTag("mlflow.data.context", "train")])])


def log_results_table(client: Any, parent: str, summary: dict) -> None:
    """The parent run's mean (std) table over seeds, as the report prints it (markdown and JSON)."""
    from videxperts.training.task import get_task
    from videxperts.training.tracking import result_value

    task = get_task(summary["task"])
    agg = summary.get("aggregate") or {}
    lines = []
    for title, columns in task.report_tables.items():
        header = [c.header for c in columns]
        cells = []
        for c in columns:
            m, s = result_value(agg, "test", f"{c.metric}_mean"), result_value(agg, "test", f"{c.metric}_std")
            cells.append("-" if m is None else f"{m:.{c.digits}f} ({s:.{c.digits}f})")
        lines += [f"### {title} (mean (std) over {len(summary['seeds'])} seeds)", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header), "| " + " | ".join(cells) + " |", ""]
    first = next(iter(summary["seeds"].values()), {})
    counts = first.get("counts", {}).get("test")
    if counts:
        lines.append("scored on test: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "results.md").write_text("\n".join(lines) + "\n")
        (Path(tmp) / "results.json").write_text(json.dumps({"aggregate": agg, "counts": first.get("counts", {})},
                                                           indent=1))
        client.log_artifact(parent, str(Path(tmp) / "results.md"))
        client.log_artifact(parent, str(Path(tmp) / "results.json"))


def log_counts(client: Any, run_id: str, counts: dict[str, dict[str, int]], metric_names: list[str]) -> None:
    """What each split's evaluation scored (videos, queries) as metrics, plus protocol warnings as a tag."""
    from videxperts.training.protocol import WARNINGS_TAG, protocol_warnings
    from videxperts.training.tracking import log_metrics, result_key

    log_metrics(client, run_id, {result_key(split, f"n_{k}"): float(v) for split, c in counts.items()
                                 for k, v in c.items()})
    warnings = protocol_warnings(counts, metric_names)
    if warnings:
        client.set_tag(run_id, WARNINGS_TAG, "; ".join(warnings)[:5000])


def check_gpu_request(use_gpu: bool, address: str | None, num_workers: int) -> None:
    """``--use-gpu`` on a machine without a GPU: one line now, not a hang until Ray gives up."""
    if not use_gpu:
        return
    from videxperts.errors import UserError

    if address is None:
        import torch

        have = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if have < num_workers:
            raise UserError(f"--use-gpu: {num_workers} worker(s) need {num_workers} GPU(s) but this machine has "
                            f"{have} visible to PyTorch (CUDA_VISIBLE_DEVICES={_env('CUDA_VISIBLE_DEVICES')}); "
                            "drop --use-gpu to train on CPU, or pass --address of a cluster with GPUs")
        return
    import ray

    gpus = float(ray.cluster_resources().get("GPU", 0))
    if gpus < num_workers:
        raise UserError(f"--use-gpu: {num_workers} worker(s) need {num_workers} GPU(s) but the Ray cluster at "
                        f"{address} has {gpus:g}")


def _env(name: str) -> str:
    import os

    return os.environ.get(name, "<unset>")


MODEL_ARTIFACT_DIR = "model"


def bake_parametrizations(model: Any) -> Any:
    """Replace parametrized weights (DCPG's weight-normed layers) by their current values.

    torch pickles a parametrized module only through its state_dict, so MLflow's pickled model
    would fail; the baked module computes the same function with plain ``weight`` tensors.
    """
    from torch.nn.utils import parametrize

    for module in model.modules():
        if parametrize.is_parametrized(module):
            for name in list(module.parametrizations):
                parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    return model


def log_pytorch_model(client: Any, run_id: str, checkpoint: Path) -> None:
    """The seed's best model as an MLflow PyTorch model (``runs:/<run>/model``: registry-ready).

    The videxperts checkpoint (``checkpoint/model.pt``, weights only) stays the format
    ``evaluate`` reads; this copy is for the MLflow model registry and ``mlflow.pytorch``.
    A failure here is a warning: the seed's results are already logged.
    """
    try:
        import mlflow.pytorch
        import torch

        from videxperts.training.checkpoint import load_model_checkpoint
        from videxperts.training.tracking import videxperts_version

        cfg, model, ckpt = load_model_checkpoint(checkpoint)
        bake_parametrizations(model)
        # MLflow warns on every pickled model; docs/DESIGN.md says it (load `model/` from trusted runs only)
        logging.getLogger("mlflow.pytorch").setLevel(logging.ERROR)
        with tempfile.TemporaryDirectory(prefix="vx-mlmodel-") as tmp:
            dest = Path(tmp) / MODEL_ARTIFACT_DIR
            mlflow.pytorch.save_model(  # pickle: the module as built by its task (pt2 export needs inputs)
                model, str(dest), serialization_format="pickle", pip_requirements=[f"torch=={torch.__version__.split('+')[0]}",
                                                    f"videxperts=={videxperts_version()}"],
                metadata={"videxperts_config": cfg.name, "task": cfg.task, "best_epoch": ckpt.get("best_epoch")})
            client.log_artifacts(run_id, str(dest), MODEL_ARTIFACT_DIR)
    except Exception as exc:  # noqa: BLE001 - an optional copy of what is logged already
        print(f"videxperts: warning: run {run_id}: the MLflow PyTorch model was not logged "
              f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})", file=sys.stderr)
