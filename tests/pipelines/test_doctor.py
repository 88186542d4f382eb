"""`videxperts doctor`: real programs on PATH, a real sqlite file, nothing created, exit 1 when required is missing."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

from videxperts.pipelines.doctor import check_shm, check_tracking, tracking_uri

EXE = str(Path(sys.executable).with_name("videxperts"))
NAMES = {"ffmpeg", "ffprobe", "espeak-ng", "tesseract", "java", "torch", "cuda", "decoders", "ray", "ray dashboard",
         "shared memory", "tracking", "configs"}


def _doctor(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "doctor", *args], capture_output=True, text=True, timeout=300, env=env)  # noqa: S603


def test_doctor_json_on_this_machine_is_ready_and_creates_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    res = _doctor("--json", "--work-dir", str(work), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    out = json.loads(res.stdout)
    checks = {c["name"]: c for c in out["checks"]}
    assert out["ok"] is True and set(checks) == NAMES
    assert all(c["status"] == "ok" for n, c in checks.items() if n not in {"cuda", "shared memory"}), checks
    assert checks["tracking"]["detail"] == f"{work.resolve() / 'mlflow.db'} does not exist yet; the first " \
                                           "train/extract creates it"
    assert "training configs in" in checks["configs"]["detail"]
    assert not work.exists()  # read-only: no work dir, no database


def test_doctor_fails_when_required_programs_are_missing(tmp_path: Path) -> None:
    env = {**{k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}, "PATH": str(tmp_path)}
    res = _doctor("--work-dir", str(tmp_path / "w"), env=env)
    assert res.returncode == 1, res.stdout + res.stderr
    lines = res.stdout.splitlines()
    missing = {line.split()[1] for line in lines if line.startswith("MISSING")}
    assert {"ffmpeg", "ffprobe", "espeak-ng", "tesseract", "java"} <= missing
    assert "fix: sudo apt-get install -y tesseract-ocr (or `make install`)" in res.stdout
    assert lines[-1] == "not ready: fix the MISSING lines above"


def test_tracking_checks_read_without_creating(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    with sqlite3.connect(db) as conn:  # a real sqlite file that is not an MLflow database
        conn.execute("CREATE TABLE other (x INTEGER)")
    (bad,) = check_tracking(f"sqlite:///{db}")
    assert bad.status == "missing" and "not a readable MLflow database" in bad.detail
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE experiments (experiment_id INTEGER)")
        conn.execute("INSERT INTO experiments VALUES (0)")
    (good,) = check_tracking(f"sqlite:///{db}")
    assert good.status == "ok" and good.detail == f"{db}: 1 experiments"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (down,) = check_tracking(f"http://127.0.0.1:{port}")
    assert down.status == "missing" and down.required and "unreachable" in down.detail
    assert tracking_uri(str(tmp_path / "w"), "http://x:5000") == "http://x:5000"
    assert not (tmp_path / "w").exists()


def test_shm_check_reads_the_real_filesystem(tmp_path: Path) -> None:
    (shm,) = check_shm(str(tmp_path))
    assert shm.status in {"ok", "warn"} and "GiB free of" in shm.detail
    (absent,) = check_shm(str(tmp_path / "none"))
    assert absent.status == "warn" and not absent.required
