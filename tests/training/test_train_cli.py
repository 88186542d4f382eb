"""The CLI end to end on a real store: train (2 seeds) -> MLflow runs -> evaluate, report, ui."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import yaml
from click.testing import CliRunner
from mlflow.tracking import MlflowClient

from tests.training.synth_store import tiny_cfg, write_store
from videxperts.pipelines.cli import cli, main
from videxperts.training import tracking
from videxperts.training.retrieval.config import load_config
from videxperts.training.retrieval.data import synthetic_splits

CFG = tiny_cfg("tiny-cli", epochs=5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cfg_path = root / "tiny.yaml"
    cfg_path.write_text(yaml.safe_dump(CFG))
    splits = synthetic_splits(load_config(CFG), {"train": 32, "val": 12, "test": 12}, seed=5)
    store = write_store(splits, root / "store.zarr", root / "data")
    return {"root": root, "config": str(cfg_path), "store": store, "data": str(root / "data"),
            "work": str(root / "work")}


@pytest.fixture(scope="module")
def trained(setup):
    """One `videxperts train` with two seeds (two Ray Train jobs)."""
    import ray

    torch.set_num_threads(1)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    ray.shutdown()  # an earlier test's in-process Ray would be reused, without this job's metadata
    res = CliRunner().invoke(cli, ["train", "--config", setup["config"], "--store", setup["store"],
                                   "--data", setup["data"], "--seeds", "0,1", "--epochs", "3",
                                   "--work-dir", setup["work"], "--experiment", "cli", "--set", "optim.lr=0.02"],
                           catch_exceptions=False)
    assert res.exit_code == 0, res.output
    client = MlflowClient(tracking.resolve_tracking_uri(setup["work"]))
    exp = client.get_experiment_by_name("cli")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "train")
    children = sorted((r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "seed"),
                      key=lambda r: int(r.data.params["train.seed"]))
    return {**setup, "client": client, "exp": exp, "parent": parent, "children": children}


def test_describe_json(setup):
    res = CliRunner().invoke(cli, ["train", "--config", setup["config"], "--describe", "--json"])
    assert res.exit_code == 0, res.output
    desc = json.loads(res.stdout)
    assert desc["parameters"] == sum(desc["components"].values()) > 0


def test_mlflow_parent_child_structure(trained):
    client, parent, children = trained["client"], trained["parent"], trained["children"]
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert all(c.data.tags[tracking.PARENT_TAG] == parent.info.run_id for c in children)
    assert trained["exp"].artifact_location.startswith(Path(trained["work"]).resolve().as_uri())
    p = parent.data.params
    assert p["store"] == trained["store"] and p["experts"] == "a,s" and p["text_encoder"] == "t1"
    assert p["model.shared_dim"] == "16" and p["train.epochs"] == "3"
    tags = parent.data.tags
    assert tags["model.name"] == "tiny-cli" and int(tags["model.parameters"]) > 0 and tags["videxperts.version"]
    for c in children:
        assert len(client.get_metric_history(c.info.run_id, "train/loss")) == 3
        assert len(client.get_metric_history(c.info.run_id, "val/t2v/Geom")) == 3
        assert "test.t2v.Geom" in c.data.metrics and "test.v2t.R1" in c.data.metrics
        arts = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"config.yaml", "checkpoint", "plots"} <= arts
        plots = {a.path for a in client.list_artifacts(c.info.run_id, "plots")}
        assert plots == {"plots/training_curve.png", "plots/rank_distribution.png"}
        assert [a.path for a in client.list_artifacts(c.info.run_id, "checkpoint")] == ["checkpoint/model.pt"]
    vals = [c.data.metrics["test.t2v.R1"] for c in children]
    assert parent.data.metrics["test.t2v.R1_mean"] == pytest.approx(sum(vals) / 2)
    assert parent.data.metrics["test.t2v.R1_std"] == pytest.approx(abs(vals[0] - vals[1]) / 2)
    assert not (Path.cwd() / "mlruns").exists()


def test_set_override_recorded_and_checkpoints_removed(trained):
    p = trained["parent"].data.params
    assert p["optim.lr"] == "0.02" and p["overrides"] == "optim.lr=0.02"
    assert all(c.data.params["optim.lr"] == "0.02" for c in trained["children"])
    ray_dir = Path(trained["work"]) / "ray"  # the best model of each seed is in MLflow: no epoch checkpoints left
    assert not ray_dir.exists() or not list(ray_dir.rglob("checkpoint_*")), list(ray_dir.rglob("checkpoint_*"))
    import ray

    assert ray.is_initialized()  # the in-process command's driver: its Ray job is named after the MLflow parent run
    meta = dict(ray._private.worker.global_worker.core_worker.get_job_config().metadata)
    assert meta["job_name"] == trained["parent"].info.run_name and meta["mlflow_run_id"] == trained["parent"].info.run_id


def test_evaluate_reproduces_the_logged_test_metrics(trained):
    child = trained["children"][0]
    res = CliRunner().invoke(cli, ["evaluate", "--run", child.info.run_id, "--store", trained["store"],
                                   "--data", trained["data"], "--work-dir", trained["work"], "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["split"] == "test" and out["videos"] == 12
    assert out["task"] == "retrieval" and out["queries"] > 0
    assert {k.split("/")[0] for k in out["metrics"]} == {"t2v", "v2t"}
    for k, v in out["metrics"].items():
        assert v == pytest.approx(child.data.metrics[tracking.result_key("test", k)], rel=1e-5, abs=1e-6)


def test_report_table(trained):
    res = CliRunner().invoke(cli, ["report", "--experiment", "cli", "--work-dir", trained["work"], "--json",
                                   "--v2t"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    t2v, v2t = out["tables"]
    assert (t2v["task"], t2v["title"], v2t["title"]) == ("retrieval", "text->video", "video->text")
    (row,) = t2v["rows"]
    assert row["model"] == "tiny-cli" and row["seeds"] == 2 and row["parameters"] > 0
    pm = trained["parent"].data.metrics
    assert row["metrics"]["t2v/Geom"]["mean"] == pytest.approx(pm["test.t2v.Geom_mean"])
    assert row["metrics"]["t2v/MdR"]["std"] == pytest.approx(pm["test.t2v.MdR_std"])
    assert v2t["rows"][0]["metrics"]["v2t/R1"]["mean"] == pytest.approx(pm["test.v2t.R1_mean"])
    text = CliRunner().invoke(cli, ["report", "--experiment", "cli", "--work-dir", trained["work"]]).output
    assert "R@1" in text and "tiny-cli" in text and f"{row['metrics']['t2v/R1']['mean']:.1f} (" in text
    assert "video->text" not in text  # the first table only, unless --all-tables
    md = CliRunner().invoke(cli, ["report", "--experiment", "cli", "--work-dir", trained["work"],
                                  "--markdown"]).output
    assert md.splitlines()[1].startswith("| model | R@1")


def test_unreachable_tracking_server_fails_before_training(setup, capsys):
    uri = f"http://127.0.0.1:{_free_port()}"
    with pytest.raises(SystemExit) as exc:
        main(["train", "--config", setup["config"], "--store", setup["store"], "--data", setup["data"],
              "--tracking-uri", uri, "--work-dir", str(setup["root"] / "w2")])
    assert exc.value.code == 2
    assert "unreachable" in capsys.readouterr().err
    assert not (setup["root"] / "w2" / "ray").exists()


def test_report_unknown_experiment(trained, capsys):  # trained: the work dir has its database
    setup = trained
    with pytest.raises(SystemExit) as exc:
        main(["report", "--experiment", "nope", "--work-dir", setup["work"]])
    assert exc.value.code == 2 and "no MLflow experiment 'nope'" in capsys.readouterr().err


def test_ui_starts_and_answers_http(trained):  # `ui` only reads: the database must exist
    setup = trained
    port = _free_port()
    exe = Path(sys.executable).with_name("videxperts")
    proc = subprocess.Popen([str(exe), "ui", "--port", str(port), "--work-dir", setup["work"]],  # noqa: S603
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, body = time.time() + 120, None
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:  # noqa: S310
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(1)
        assert body is not None and "OK" in body, proc.stderr.read().decode() if proc.poll() is not None else ""
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    with pytest.raises(OSError):  # the server went down with the command
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)  # noqa: S310
    # the printed address opens MLflow 3's "Model training" view, not its default GenAI one
    assert f"http://127.0.0.1:{port}/#/experiments?workflowType=machine_learning" in proc.stderr.read().decode()
