"""MLflow bookkeeping: run end states, tracking store checks, and a crashed training ending FAILED."""

from __future__ import annotations

import os
import signal
import socket

import pytest
import torch
from mlflow.tracking import MlflowClient

from videxperts.pipelines.train_job import CRASH_ENV, TrainRequest, run_train
from videxperts.training import tracking
from videxperts.training.retrieval.data import synthetic_splits
from videxperts.training.runner import TrainingError
from videxperts.training.tracking import TrackingUnavailable

CFG = {
    "task": "retrieval",
    "name": "tiny-crash",
    "data": {"experts": {"a": {"dim": 6}, "b": {"dim": 5}},
             "text": {"encoder": "t1", "dim": 4, "max_tokens": 4, "max_captions": 2}},
    "model": {"variant": "ce", "shared_dim": 8, "text_vlad": {"clusters": 2, "ghosts": 0}},
    "optim": {"name": "adam", "lr": 0.01},
    "train": {"batch_size": 4, "epochs": 3, "seed": 0},
}


@pytest.fixture
def client(tmp_path):
    uri = tracking.resolve_tracking_uri(tmp_path)
    c = MlflowClient(uri)
    exp = tracking.ensure_experiment(c, "t", tracking.artifact_root(tmp_path))
    return c, exp


def _status(c, run_id):
    return c.get_run(run_id).info.status


def test_run_guard_end_states(client):
    c, exp = client
    ok = tracking.start_run(c, exp, "ok", {})
    with tracking.run_guard(c, ok):
        pass
    bad = tracking.start_run(c, exp, "bad", {})
    with pytest.raises(ValueError), tracking.run_guard(c, bad):
        raise ValueError("boom")
    killed = tracking.start_run(c, exp, "killed", {})
    with pytest.raises(KeyboardInterrupt), tracking.run_guard(c, killed):
        raise KeyboardInterrupt
    assert [_status(c, r) for r in (ok, bad, killed)] == ["FINISHED", "FAILED", "KILLED"]


def test_sigterm_ends_a_run_killed(client):
    c, exp = client
    run = tracking.start_run(c, exp, "term", {})
    with pytest.raises(KeyboardInterrupt), tracking.terminate_as_interrupt(), tracking.run_guard(c, run):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler raises at the next bytecode
        for _ in range(1000):
            pass
    assert _status(c, run) == "KILLED"


def test_default_uri_and_artifact_location(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_tracking_uri(tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    c = MlflowClient(uri)
    exp = tracking.ensure_experiment(c, "x", tracking.artifact_root(tmp_path))
    assert c.get_experiment(exp).artifact_location == (tmp_path.resolve() / "mlartifacts").as_uri()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////elsewhere.db")
    assert tracking.resolve_tracking_uri(tmp_path) == "sqlite:////elsewhere.db"
    assert tracking.resolve_tracking_uri(tmp_path, "http://h:1") == "http://h:1"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_server_is_a_clear_error():
    uri = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(TrackingUnavailable, match="unreachable"):
        tracking.check_tracking(uri, timeout_s=2)


def test_mean_std():
    out = tracking.mean_std([{"a": 1.0, "b": 2.0}, {"a": 3.0}])
    assert out == {"a_mean": 2.0, "a_std": 1.0}


def test_result_keys_sort_after_the_curves_and_old_keys_still_read():
    keys = tracking.result_keys("test", {"t2v/R1": 1, "rsum": 2})
    assert keys == {"test.t2v.R1": 1.0, "test.rsum": 2.0}
    # the MLflow UI's chart section is the text before the last "/": none for results, after train/ and val/
    assert all("/" not in k for k in keys)
    assert tracking.result_value({"test.t2v.R1_mean": 3.0, "test/t2v/R1_mean": 9.0}, "test", "t2v/R1_mean") == 3.0
    assert tracking.result_value({"test/t2v/R1_mean": 9.0}, "test", "t2v/R1_mean") == 9.0
    assert tracking.result_value({}, "test", "t2v/R1_mean") is None
    assert tracking.result_counts({"test/n_videos": 4, "test.n_videos": 5, "val.n_queries": 7}, "test") == {"videos": 5}


def test_crashed_training_ends_failed(tmp_path, monkeypatch):
    """A worker that dies with no retries left: the seed run and the parent run end FAILED."""
    torch.set_num_threads(1)
    from videxperts.training.retrieval.config import load_config

    splits = synthetic_splits(load_config(CFG), {"train": 12, "val": 4, "test": 4})
    monkeypatch.setenv(CRASH_ENV, "1")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    req = TrainRequest(config=CFG, work_dir=str(tmp_path), experiment="crash", max_failures=0,
                       source={"kind": "arrays", "splits": splits})
    with pytest.raises(TrainingError, match="^training failed: "):  # one line, not Ray's traceback
        run_train(req)
    c = MlflowClient(tracking.resolve_tracking_uri(tmp_path))
    exp = c.get_experiment_by_name("crash")
    runs = c.search_runs([exp.experiment_id])
    assert len(runs) == 2
    assert {r.info.status for r in runs} == {"FAILED"}
    child = next(r for r in runs if r.data.tags.get(tracking.KIND_TAG) == "seed")
    assert c.get_metric_history(child.info.run_id, "train/loss")  # epoch 1 was logged before the crash
