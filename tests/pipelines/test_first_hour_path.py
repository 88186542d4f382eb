"""Issue 16: the documented first hour runs as written, and leaves a browsable record.

The "Typical flow" of `videxperts --help` and README's "first hour" block are the same lines,
run here verbatim through the installed entry point in an empty directory (12 synthetic clips,
two cheap experts, the shipped `quick_ce`). Then the command `train` prints for the report,
`evaluate` on the parent run, and the MLflow record: one database and one experiment for
extraction and training, the links between them, the protocol's counts and the model.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from videxperts.training.tracking import result_key

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # two Ray starts; ~2-3 min on 2 idle cores
EXE = str(Path(sys.executable).with_name("videxperts"))
README = Path(__file__).resolve().parents[2] / "README.md"


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "VIDEXPERTS_WORK_DIR", "VIDEXPERTS_EXPERIMENT", "RAY_ADDRESS")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": "1"}


def _flow_from_help() -> list[str]:
    out = subprocess.run([EXE, "--help"], capture_output=True, text=True, timeout=120, check=True).stdout
    block = out.split("Typical flow", 1)[1].splitlines()[1:]
    return [line.strip() for line in block if line.strip().startswith("videxperts ")]


def _flow_from_readme() -> list[str]:
    text = README.read_text()
    section = text.split("### The first hour, by hand", 1)[1]
    code = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.strip() for line in code.splitlines() if line.strip()]


def _run(cmd: str | list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    args = shlex.split(cmd) if isinstance(cmd, str) else cmd
    assert args[0] == "videxperts"
    res = subprocess.run([EXE, *args[1:]], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{args}: exit {res.returncode}\n{res.stderr[-3000:]}"
    assert "\r" not in res.stderr + res.stdout, "progress redraws in a log (not a terminal)"
    return res


def test_help_and_readme_document_the_same_flow() -> None:
    flow = _flow_from_help()
    assert len(flow) == 4 and flow == _flow_from_readme()
    assert not any("--data" in line for line in flow[2:])  # the store carries the splits


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("firsthour")
    outputs = [_run(line, root) for line in _flow_from_help()]
    return {"root": root, "work": root / "work", "outputs": outputs}


def test_the_documented_flow_runs_verbatim(flow: dict) -> None:
    synth, extract, train, report = flow["outputs"]
    assert "12 clips" in synth.stdout
    assert "Ray up" in extract.stderr and "actors ready" in extract.stderr
    assert "not writable" not in extract.stderr and "Token authentication" not in extract.stderr
    assert "Creating initial MLflow database tables" not in extract.stderr + train.stderr
    # train: counts, protocol warnings, then the experiment and the exact report command
    last = train.stdout.strip().splitlines()
    assert re.search(r"^test: \d+ videos, \d+ queries", train.stdout, re.M)
    assert re.search(r"warning: test: R@.*= 100 by construction", train.stdout)
    assert last[-1] == "experiment 'videxperts'; the table: videxperts report --experiment videxperts --work-dir work"
    assert "train quick-ce seed 0 (1/1): " in train.stderr and "loss " in train.stderr
    again = _run(last[-1].split("the table: ", 1)[1], flow["root"])
    assert again.stdout == report.stdout
    assert "quick-ce" in report.stdout and re.search(r"test scored \d+ videos, \d+ queries", report.stdout)
    assert sorted(p.name for p in flow["root"].iterdir()) == ["work"]  # one work dir, nothing else
    assert sorted(p.name for p in flow["work"].glob("mlflow.db*")) == ["mlflow.db", "mlflow.db.lock"]


def test_evaluate_a_parent_run_gives_mean_std_over_seeds(flow: dict) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{flow['work'] / 'mlflow.db'}")
    exp = client.get_experiment_by_name("videxperts")
    parent = client.search_runs([exp.experiment_id], "tags.`videxperts.kind` = 'train'")[0]
    res = _run(["videxperts", "evaluate", "--run", parent.info.run_id, "--store", "work/store.zarr", "--json"],
               flow["root"])
    out = json.loads(res.stdout)
    assert out["run"] == parent.info.run_id and len(out["seeds"]) == 1
    assert out["metrics"]["t2v/R1"]["std"] == 0.0
    assert out["videos"] == int(parent.data.metrics["test.n_videos"])
    assert out["queries"] == int(parent.data.metrics["test.n_queries"])
    for k, v in out["metrics"].items():  # the same numbers as training logged
        assert v["mean"] == pytest.approx(parent.data.metrics[result_key("test", f"{k}_mean")], rel=1e-5, abs=1e-6)


def test_mlflow_links_video_to_run(flow: dict) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    from videxperts.storage.dataset_meta import read_dataset_meta

    uri = f"sqlite:///{flow['work'] / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("videxperts")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # the "Model training" view
    runs = client.search_runs([exp.experiment_id])
    (extraction,) = [r for r in runs if r.data.tags.get("videxperts.kind") == "extract"]
    (parent,) = [r for r in runs if r.data.tags.get("videxperts.kind") == "train"]
    (child,) = [r for r in runs if r.data.tags.get("videxperts.kind") == "seed"]
    assert extraction.info.run_name == "extract demo · 12 videos · 2 experts"
    assert parent.info.run_name == "train quick-ce · 12 videos · 2 experts · 1 seed"
    assert "profile.yaml" in {a.path for a in client.list_artifacts(extraction.info.run_id)}
    store = flow["work"] / "store.zarr"
    meta = read_dataset_meta(str(store))
    p, tags = parent.data.params, parent.data.tags
    assert tags["videxperts.extraction_runs"] == extraction.info.run_id == meta["extraction_runs"][0]
    assert p["store"] == str(store) and p["store_uri"] == store.as_uri()
    assert p["manifest_sha256"] == meta["manifest_sha256"] == tags["videxperts.manifest_sha256"]
    assert p["manifest_uri"] == (flow["work"] / "data" / "manifest.parquet").as_uri()
    assert p["features.scene.weights"].startswith("random-init") and p["text.minilm.weights"]
    assert tags["videxperts.features.random_init"] == "RANDOM-INIT features: audio, scene"
    assert p["split.test.videos"] == str(len(meta["splits"]["test"]))
    (ds,) = parent.inputs.dataset_inputs
    assert ds.dataset.name == "store.zarr" and str(store.as_uri()) in ds.dataset.source
    assert {"results.md", "results.json", "config.yaml"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}
    results = Path(client.download_artifacts(parent.info.run_id, "results.md", str(flow["root"] / "dl")))
    assert "| R@1 |" in results.read_text() and "scored on test:" in results.read_text()
    for run in (parent, child):
        assert run.data.metrics["test.n_queries"] > run.data.metrics["test.n_videos"] > 0
        assert "videxperts.protocol.warnings" in client.get_run(run.info.run_id).data.tags
    # the best checkpoint as an MLflow PyTorch model: registry-ready
    assert "model/MLmodel" in {a.path for a in client.list_artifacts(child.info.run_id, "model")}
    mlflow.set_tracking_uri(uri)
    try:
        version = mlflow.register_model(f"runs:/{child.info.run_id}/model", "quick-ce")
    finally:
        mlflow.set_tracking_uri(None)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    stored = client.get_model_version("quick-ce", version.version)
    assert stored.run_id == child.info.run_id and stored.status == "READY" and stored.source.endswith("/model")
