"""`store info` groups failures by error class and expert (one line per kind of problem, not per file)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.storage.test_store import PROV
from videxperts.storage.store import FeatureStore

EXE = str(Path(sys.executable).with_name("videxperts"))


def _store(tmp_path: Path) -> str:
    url = str(tmp_path / "store.zarr")
    store = FeatureStore.open(url, "a")
    store.ensure_expert("audio", 4, PROV)
    store.ensure_expert("ocr", 4, PROV)
    with store.writer("w") as w:
        for i in range(5):
            w.fail(f"v{i}", "audio", "AudioDecodeError", f"/data/videos/v{i}.mp4: no audio stream", 1)
        for i in (5, 6):
            w.fail(f"v{i}", "ocr", "TesseractError", f"/data/videos/v{i}.mp4: tesseract exited 1", 2)
        w.fail("v7", "audio", "TimeoutError", "/data/videos/v7.mp4: decode timed out after 60 s", 3)
        w.quarantine("v8", "ocr", "/data/videos/v8.mp4: decoder hangs")
        w.write("v9", "audio", np.ones((2, 4), np.float32), np.zeros(2, np.float32))
    return url


def test_info_groups_failures_by_class_and_expert(tmp_path: Path) -> None:
    url = _store(tmp_path)
    res = subprocess.run([EXE, "store", "info", url, "--json"], capture_output=True, text=True, timeout=120)  # noqa: S603
    assert res.returncode == 0, res.stderr
    groups = json.loads(res.stdout)["failures"]
    assert [(g["state"], g["error_class"], g["expert"], g["count"]) for g in groups] == [
        ("failed", "AudioDecodeError", "audio", 5), ("failed", "TesseractError", "ocr", 2),
        ("failed", "TimeoutError", "audio", 1), ("quarantined", "Quarantined", "ocr", 1)]
    assert groups[0]["videos"] == ["v0", "v1", "v2"] and groups[0]["messages"][0] == "/data/videos/v0.mp4: no audio stream"

    text = subprocess.run([EXE, "store", "info", url], capture_output=True, text=True, timeout=120).stdout  # noqa: S603
    lines = text.splitlines()
    start = lines.index("failures by error class and expert (9 in all):")
    body = lines[start + 1 :]
    assert len(body) == 4  # one line per (state, class, expert), not one per file
    assert body[0].split()[:4] == ["failed", "AudioDecodeError", "audio", "x5"]
    assert "e.g. v0, v1, v2: /data/videos/v0.mp4: no audio stream" in body[0]
    assert body[3].split()[:4] == ["quarantined", "Quarantined", "ocr", "x1"]
