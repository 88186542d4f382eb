"""The package installs like one: a wheel built from the repository, installed into a fresh virtual
environment, imports as ``videxperts`` only, ships its configs, and runs a tiny extraction and
training by shipped names from a directory that is not the repository.

The fresh environment borrows the project environment's third-party packages through a ``.pth``
line (torch and friends are gigabytes); videxperts itself comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "MLFLOW_TRACKING_URI", "VIDEXPERTS_CONFIGS")}
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    assert out.returncode == 0, f"{cmd[:3]}: {out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"  # a clean copy: building must not leave build/ or egg-info in the checkout
    shutil.copytree(REPO, src, ignore=shutil.ignore_patterns(".venv", ".git", "work", "*.egg-info", "build",
                                                            "__pycache__", ".pytest_cache", ".ruff_cache"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"),
          str(src)], cwd=root)
    (wheel,) = (root / "dist").glob("videxperts-*.whl")
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "_project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "-q",
          str(wheel)], cwd=root)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return {"root": root, "wheel": wheel, "python": str(venv / "bin" / "python"),
            "cli": str(venv / "bin" / "videxperts"), "cwd": elsewhere, "site": site}


def test_wheel_holds_one_namespace_and_the_configs(installed: dict) -> None:
    names = zipfile.ZipFile(installed["wheel"]).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"videxperts"}, tops
    for needed in ("videxperts/configs/extract/demo.yaml", "videxperts/configs/train/demo_ce.yaml",
                   "videxperts/configs/train/importance/01_scene.yaml", "videxperts/training/retrieval/task.py",
                   "videxperts/cluster/deploy/ray-cluster.yaml"):
        assert needed in names, needed


def test_import_from_the_wheel_only(installed: dict) -> None:
    code = ("import importlib.util, videxperts, videxperts.training.runner as r; "
            "print(videxperts.__version__, r.__file__, importlib.util.find_spec('training'))")
    out = _run([installed["python"], "-c", code], cwd=installed["cwd"]).stdout.split()
    assert out[0] != "0+unknown"
    assert out[1].startswith(str(installed["site"])), out[1]  # not the repository's folders
    assert out[2] == "None"  # no generic top-level package installed


def test_tiny_extract_and_train_by_names(installed: dict, synth_dataset: Path) -> None:
    cwd = installed["cwd"]
    store = cwd / "store.zarr"
    _run([installed["cli"], "extract", str(synth_dataset), "--out", str(store), "--profile", "demo",
          "--experts", "scene", "--no-tracking", "--no-progress", "--json"], cwd=cwd)
    out = _run([installed["cli"], "train", "--config", "importance/01_scene", "--store", str(store),
                "--data", str(synth_dataset), "--epochs", "1", "--work-dir", str(cwd / "work"), "--json"], cwd=cwd)
    summary = json.loads(out.stdout)
    assert summary["task"] == "retrieval" and set(summary["seeds"]) == {"0"}
    assert "t2v/R1" in summary["seeds"]["0"]["test"]
