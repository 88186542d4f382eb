"""Provenance links between jobs: what an extraction records in its store and what a training
run records about the store it read (the extraction runs, the manifest, each expert's weights).

``extract`` writes the dataset's splits, the manifest hash and its own run id into the store
(:mod:`videxperts.storage.dataset_meta`); ``train`` reads them back, so a training run links to
the extraction runs that wrote its features and names the exact manifest (by hash).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

EXTRACTION_RUNS_TAG = "videxperts.extraction_runs"
RANDOM_INIT_TAG = "videxperts.features.random_init"
MANIFEST_TAG = "videxperts.manifest_sha256"


def manifest_file(inputs: Any) -> Path | None:
    """The manifest file of an extraction's inputs (None for a folder or a glob)."""
    from videxperts.storage.manifest import MANIFEST_NAME

    if getattr(inputs, "kind", None) != "manifest":
        return None
    src = Path(inputs.source)
    return src if src.is_file() else src / MANIFEST_NAME


def record_extraction_inputs(store_url: str, inputs: Any, run_id: str | None) -> dict[str, Any]:
    """Record the inputs' splits, the manifest hash and the extraction run id in the store."""
    from videxperts.storage.dataset_meta import record_dataset

    return record_dataset(store_url, {v.video_id: v.split for v in inputs.videos}, manifest_file(inputs), run_id)


def store_provenance(store: Any, store_url: str) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) a training run records about its store: absolute URI, manifest hash,
    extraction runs, each expert's and text encoder's weights identity, and a loud tag when
    any of them is randomly initialised."""
    from videxperts.storage._fs import absolute_store_url
    from videxperts.storage.dataset_meta import read_dataset_meta

    url = absolute_store_url(store_url)
    meta = read_dataset_meta(url)
    params: dict[str, str] = {"store_uri": Path(url).as_uri() if "://" not in url else url}
    tags: dict[str, str] = {}
    random_init = []
    for kind, entries in (("features", store.experts), ("text", store.text_encoders)):
        for name, entry in sorted(entries.items()):
            weights = str((entry.get("provenance") or {}).get("weights", "unknown"))
            params[f"{kind}.{name}.weights"] = weights
            if weights.startswith("random-init"):
                random_init.append(name)
    if random_init:
        tags[RANDOM_INIT_TAG] = "RANDOM-INIT features: " + ", ".join(random_init)
    if meta.get("manifest_sha256"):
        params["manifest_sha256"] = meta["manifest_sha256"]
        tags[MANIFEST_TAG] = meta["manifest_sha256"]
    if meta.get("manifest"):
        params["manifest_uri"] = Path(meta["manifest"]).as_uri()
    if meta.get("extraction_runs"):
        tags[EXTRACTION_RUNS_TAG] = ",".join(meta["extraction_runs"])
    return params, tags


def extraction_run_name(plan: Any, inputs: Any) -> str:
    """``extract demo · 24 videos · 8 experts``: what the run did, readable in the runs list."""
    profile = plan.profile.get("name") or "profile"
    n, e = len(inputs.videos), len(plan.experts)
    return f"extract {profile} · {n} video{'s' if n != 1 else ''} · {e} expert{'s' if e != 1 else ''}"


def annotate_extraction_run(tracker: Any, profile: dict[str, Any]) -> None:
    """The resolved profile as an artifact, the experiment in the "Model training" view, a kind tag."""
    import yaml

    from videxperts.pipelines.train_context import set_experiment_kind
    from videxperts.training.tracking import KIND_TAG

    try:
        client, run_id = tracker.client, tracker.run_id
        run = client.get_run(run_id)
        set_experiment_kind(client, run.info.experiment_id)
        client.set_tag(run_id, KIND_TAG, "extract")
        client.log_text(run_id, yaml.safe_dump({k: v for k, v in profile.items() if k != "source"}, sort_keys=False),
                        "profile.yaml")
    except Exception as exc:  # noqa: BLE001 - tracking trouble is handled (kept locally) at the job's end
        tracker.error = tracker.error or f"{type(exc).__name__}: {str(exc)[:200]}"
