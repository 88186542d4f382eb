"""Issue 16, the parts of a newcomer's first hour that need no Ray: one-line failures before
anything starts, read-only commands that create nothing, the protocol warnings, the recorded
splits and progress lines without carriage returns. Through the installed entry point."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("videxperts"))


def _run(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    """The console entry point: in a subprocess when ``cwd``/``env`` matter, else ``main`` in-process
    (the same function the installed script calls; one import of torch and MLflow for the file)."""
    if cwd is not None or env is not None:
        base = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "VIDEXPERTS_WORK_DIR")}
        return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                              env={**base, **(env or {})})
    from contextlib import redirect_stderr, redirect_stdout

    from videxperts.pipelines.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = 0
    saved = {k: os.environ.pop(k) for k in ("MLFLOW_TRACKING_URI", "VIDEXPERTS_WORK_DIR") if k in os.environ}
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        os.environ.update(saved)
    return subprocess.CompletedProcess([EXE, *args], code, out.getvalue(), err.getvalue())


def _one_line(res: subprocess.CompletedProcess[str]) -> str:
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, (res.returncode, res.stderr)
    return lines[0]


def test_unknown_command_suggests_the_closest() -> None:
    line = _one_line(_run("trian", env={}))  # the installed script itself
    assert "No such command 'trian'" in line and "did you mean 'train'" in line
    assert "did you mean" not in _one_line(_run("zzzz"))


def test_read_only_commands_never_create_a_database(tmp_path: Path) -> None:
    work = tmp_path / "nowhere"
    for args in (["report", "--experiment", "demo"], ["report"], ["ui"]):
        line = _one_line(_run(*args, "--work-dir", str(work)))
        assert f"no MLflow tracking database at {work / 'mlflow.db'}" in line
    env_line = _one_line(_run("report", cwd=tmp_path, env={"VIDEXPERTS_WORK_DIR": str(work)}))
    assert str(work) in env_line
    assert not work.exists() and not (tmp_path / "work").exists()


def _db_with_runs(work: Path) -> str:
    """A work dir whose tracking store holds one extraction run and no training run."""
    from mlflow.tracking import MlflowClient

    from videxperts.pipelines.workdir import sqlite_uri

    work.mkdir(parents=True)
    uri = sqlite_uri(work)
    client = MlflowClient(uri)
    exp = client.create_experiment("only-extraction")
    client.create_run(exp, tags={"videxperts.job": "extract"})
    return uri


def test_report_lists_experiments_and_fails_without_training_runs(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _db_with_runs(work)
    listed = _run("report", "--work-dir", str(work))
    assert listed.returncode == 0, listed.stderr
    assert "only-extraction: 0 training runs, 1 extraction runs" in listed.stdout
    doc = json.loads(_run("report", "--work-dir", str(work), "--json").stdout)
    assert doc["experiments"] == [{"name": "only-extraction", "training_runs": 0, "extraction_runs": 1}]
    line = _one_line(_run("report", "--experiment", "only-extraction", "--work-dir", str(work)))
    assert "has no finished training runs" in line


def test_report_reads_dotted_results_and_runs_logged_before_them(tmp_path: Path) -> None:
    """Single-point results are ``test.t2v.R1_mean`` (after the curves on a run page); older runs
    logged ``test/t2v/R1_mean``: ``report`` reads both, with what each scored."""
    from mlflow.tracking import MlflowClient

    from videxperts.pipelines.workdir import sqlite_uri
    from videxperts.training import tracking

    work = tmp_path / "work"
    work.mkdir()
    client = MlflowClient(sqlite_uri(work))
    exp = client.create_experiment("mixed")
    styles = {"old": lambda k: f"test/{k}", "new": lambda k: tracking.result_key("test", k)}
    for i, (name, key) in enumerate(styles.items()):
        run = client.create_run(exp, run_name=name, tags={tracking.KIND_TAG: "train", tracking.TASK_TAG: "retrieval",
                                                          "model.name": name})
        metrics = {key("t2v/R1_mean"): 40.0 + i, key("t2v/R1_std"): 1.5, key("n_videos"): 30 + i}
        for k, v in metrics.items():
            client.log_metric(run.info.run_id, k, v)
        client.set_terminated(run.info.run_id)
    assert all("/" not in k for k in metrics), "single-point results must sort after the curves"
    doc = json.loads(_run("report", "--experiment", "mixed", "--work-dir", str(work), "--json").stdout)
    rows = {r["model"]: r for r in doc["tables"][0]["rows"]}
    assert rows["old"]["metrics"]["t2v/R1"] == {"mean": 40.0, "std": 1.5} and rows["old"]["scored"] == {"videos": 30}
    assert rows["new"]["metrics"]["t2v/R1"] == {"mean": 41.0, "std": 1.5} and rows["new"]["scored"] == {"videos": 31}


def test_ui_checks_its_port_first_and_suggests_another(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _db_with_runs(work)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = _one_line(_run("ui", "--work-dir", str(work), "--port", str(port)))
    assert f"port {port} on 127.0.0.1 is already in use" in line and "try --port " in line


def test_evaluate_split_is_a_choice_checked_before_any_lookup(tmp_path: Path) -> None:
    line = _one_line(_run("evaluate", "--run", "0" * 32, "--store", str(tmp_path / "s.zarr"), "--split", "vall",
                          "--work-dir", str(tmp_path / "nowhere")))
    assert "'vall' is not one of 'train', 'val', 'test'" in line
    assert not (tmp_path / "nowhere").exists()


def test_evaluate_names_what_a_run_id_is(tmp_path: Path) -> None:
    work = tmp_path / "work"
    _db_with_runs(work)
    line = _one_line(_run("evaluate", "--run", "not-a-run", "--store", str(tmp_path / "s.zarr"),
                          "--work-dir", str(work)))
    assert "--run 'not-a-run': no such run" in line and "a run id is the 32-hex-digit id" in line
    from mlflow.tracking import MlflowClient

    run = MlflowClient(f"sqlite:///{work / 'mlflow.db'}").search_runs(["1"])[0]
    line = _one_line(_run("evaluate", "--run", run.info.run_id, "--store", str(tmp_path / "s.zarr"),
                          "--work-dir", str(work)))
    assert "not a training run" in line


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a GPU")
def test_train_use_gpu_without_a_gpu_fails_before_anything(tmp_path: Path) -> None:
    work = tmp_path / "work"
    line = _one_line(_run("train", "--config", "quick_ce", "--store", str(tmp_path / "s.zarr"), "--use-gpu",
                          "--work-dir", str(work)))
    assert line.startswith("videxperts: error: --use-gpu: 1 worker(s) need 1 GPU(s) but this machine has 0")
    assert not work.exists()


def test_protocol_warnings() -> None:
    from videxperts.training.protocol import protocol_warnings, split_size_warnings, trivial_recall_ks

    metrics = ["t2v/R1", "t2v/R5", "t2v/R10", "t2v/R50", "t2v/MdR", "v2t/R5"]
    assert trivial_recall_ks(4, metrics) == [5, 10, 50]
    assert trivial_recall_ks(1000, metrics) == []
    assert protocol_warnings({"test": {"videos": 4, "queries": 26}}, metrics) == [
        "test: R@5, R@10, R@50 = 100 by construction (4 videos ranked)"]
    assert protocol_warnings({"test": {"videos": 50, "queries": 300}}, metrics) == [
        "test: R@50 = 100 by construction (50 videos ranked)"]
    assert protocol_warnings({"test": {"videos": 200}}, metrics) == []
    got = split_size_warnings({"train": [f"v{i}" for i in range(20)], "val": [], "test": ["a", "b"]})
    assert got == ["split 'val' is empty: no model selection (the last epoch is kept)",
                   "split 'test' has only 2 videos: its metrics move in steps of 50 points"]


def test_splits_recorded_in_the_store_are_read_without_data(tmp_path: Path) -> None:
    from videxperts.storage.dataset_meta import read_dataset_meta, record_dataset
    from videxperts.storage.store import FeatureStore
    from videxperts.training.splits import read_splits

    store = str(tmp_path / "s.zarr")
    FeatureStore.open(store, mode="a")
    manifest = tmp_path / "manifest.parquet"
    manifest.write_bytes(b"not really parquet, only hashed")
    with pytest.raises(Exception, match="records no splits"):
        read_splits(None, store=store)
    record_dataset(store, {"a": "train", "b": "test", "c": None}, manifest, "run1")
    record_dataset(store, {"b": "val", "d": "train"}, None, "run2")  # a later manifest moves b
    assert read_splits(None, store=store) == {"train": ["a", "d"], "val": ["b"], "test": []}
    meta = read_dataset_meta(store)
    assert meta["extraction_runs"] == ["run1", "run2"] and meta["manifest"] == str(manifest)
    assert meta["manifest_sha256"].startswith("sha256:") and len(meta["manifest_sha256"]) == 71


def test_progress_lines_without_carriage_returns() -> None:
    from videxperts.pipelines.progress import LineProgress, progress_bar

    out = io.StringIO()
    assert isinstance(progress_bar(5, "extract", "video", file=out), LineProgress)  # not a terminal
    bar = LineProgress(5, "extract", "video", file=out, period=0)
    for i in range(5):
        bar.update(1)
        bar.set_postfix(done=i + 1, failed=0, refresh=False)
    bar.close()
    text = out.getvalue()
    assert "\r" not in text and text.endswith("\n")
    assert "extract: 5/5 video" in text.splitlines()[-1] and "done=5, failed=0" in text.splitlines()[-1]
    slow = io.StringIO()
    bar = LineProgress(100, "extract", "video", file=slow, period=3600)
    for _ in range(100):
        bar.update(1)
    bar.close()
    assert len(slow.getvalue().splitlines()) == 2  # the first update, then the final line


def test_writable_copies_only_read_only_arrays() -> None:
    import numpy as np

    from videxperts.extractors.arrays import writable

    a = np.arange(6, dtype=np.float32)
    assert writable(a) is a
    ro = a.copy()
    ro.flags.writeable = False
    w = writable(ro)
    assert w.flags.writeable and w is not ro and np.array_equal(w, ro)
