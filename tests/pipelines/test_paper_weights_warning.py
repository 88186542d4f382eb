"""`extract --profile paper` without the published weights warns loudly; demo and filled-in profiles do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from videxperts.extractors.pretrained import random_despite_pretrained, random_weights_warning
from videxperts.extractors.registry import load_profile

EXE = str(Path(sys.executable).with_name("videxperts"))


def _extract(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "extract", str(tmp_path / "missing"), "--out", str(tmp_path / "s.zarr"),  # noqa: S603
                           "--no-progress", *args], capture_output=True, text=True, timeout=120)


def test_paper_profile_with_random_weights_warns_before_anything_runs(tmp_path: Path) -> None:
    res = _extract(tmp_path, "--profile", "paper", "--experts", "scene,i3d,ocr")
    assert res.returncode == 2
    err = res.stderr
    assert "WARNING: profile 'paper' expects pretrained weights, but scene, i3d have weights: null." in err
    assert "SEEDED RANDOM networks" in err and "docs/EXPERTS.md" in err
    assert err.strip().splitlines()[-1].startswith("videxperts: error: ")
    quiet = _extract(tmp_path, "--profile", "demo")
    assert quiet.returncode == 2 and "WARNING" not in quiet.stderr


def test_only_empty_pretrained_slots_count(tmp_path: Path) -> None:
    paper = load_profile("paper")
    assert random_despite_pretrained(paper) == ["scene", "inst", "i3d", "r2p1d", "audio", "regions"]
    assert random_despite_pretrained(load_profile("demo")) == []
    paper["experts"]["scene"]["weights"] = str(tmp_path / "densenet161_places365.pt")
    assert random_despite_pretrained(paper, ["scene", "ocr"]) == []
    assert random_weights_warning(paper, ["scene"]) is None
