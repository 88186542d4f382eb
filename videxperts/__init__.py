"""videxperts: extract expert features from raw video and images with Ray, store them in Zarr,
train retrieval, dense-captioning and image-text matching models with Ray Train, track in MLflow.

The face of the package is small and imports nothing heavy; everything is reached lazily:

    import videxperts
    store = videxperts.open_store("work/store.zarr")      # numpy arrays and pandas tables
    feats, available = store.features("scene", store.video_ids[:4])
    summary = videxperts.train("demo_ce", store="work/store.zarr", seeds=[0])
    metrics = videxperts.evaluate(run=summary["seeds"][0]["run_id"], store="work/store.zarr")

The command line (``videxperts --help``) covers the same ground and more.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from videxperts.storage.view import StoreView

try:
    __version__ = version("videxperts")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__", "evaluate", "open_store", "train"]


def open_store(url: str, storage_options: dict[str, Any] | None = None) -> StoreView:
    """A read-only view of a feature store (path or fsspec URL) that returns numpy and pandas."""
    from videxperts.storage.view import StoreView

    return StoreView.open(url, storage_options=storage_options)


def train(config: str | dict, store: str, **options: Any) -> dict:
    """``videxperts train`` from Python: ``config`` is a name, a path or a dict; options as in
    :class:`videxperts.pipelines.train_job.TrainRequest` (seeds, num_workers, work_dir, ...).
    Returns the command's summary (parent run id, per-seed and mean (std) test metrics)."""
    from videxperts.pipelines.train_job import TrainRequest, run_train

    return run_train(TrainRequest(config=config, store=store, **options))


def evaluate(store: str, run: str | None = None, checkpoint: str | None = None, split: str = "test",
             **options: Any) -> dict:
    """``videxperts evaluate`` from Python: the metrics of a run (its best model) or a checkpoint."""
    from videxperts.pipelines.evaluate_job import evaluate_checkpoint

    return evaluate_checkpoint(store=store, ref=run or checkpoint, split=split, **options)
