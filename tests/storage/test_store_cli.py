"""`videxperts store info|verify|compact` through the real CLI group."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr
from click.testing import CliRunner

from tests.storage.test_store import PROV, feats
from videxperts.pipelines.cli import cli
from videxperts.storage.store import FeatureStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def url(tmp_path) -> str:
    url = str(tmp_path / "store.zarr")
    store = FeatureStore.open(url, "a")
    store.ensure_expert("scene", 16, PROV)
    store.ensure_expert("audio", 8, PROV | {"dtype": "float32"})
    with store.writer("w") as w:
        for v in ("a", "b", "c"):
            w.write(v, "scene", feats(v, "scene", 16), np.zeros(len(feats(v, "scene", 16))))
        w.write("a", "audio", feats("a", "audio", 8), np.zeros(len(feats("a", "audio", 8))))
        w.fail("b", "audio", "AudioDecodeError", "no audio stream", 3)
        w.quarantine("c", "audio", "decoder hangs")
    return url


def run(*args: str):
    return CliRunner().invoke(cli, ["store", *args], catch_exceptions=False)


def test_info_json_keys(url: str) -> None:
    res = run("info", url, "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert doc["videos"] == 3
    assert set(doc["experts"]) == {"scene", "audio"}
    for e in doc["experts"].values():
        assert {"dim", "done", "failed", "quarantined", "provenance"} <= set(e)
    a = doc["experts"]["audio"]
    assert (a["dim"], a["done"], a["failed"], a["quarantined"]) == (8, 1, 1, 1)
    assert a["failure_reasons"][0]["error_class"] == "AudioDecodeError"
    assert a["quarantine_reasons"][0]["message"] == "decoder hangs"
    assert doc["experts"]["scene"]["provenance"]["weights"] == PROV["weights"]
    assert doc["size_bytes"] > 0


def test_info_human(url: str) -> None:
    res = run("info", url)
    assert res.exit_code == 0
    assert "scene" in res.output and "no audio stream" in res.output and "videos  3" in res.output


def test_verify_ok_then_damaged(url: str) -> None:
    res = run("verify", url)
    assert res.exit_code == 0 and "ok" in res.output
    store = FeatureStore.open(url, "a")
    src = store.snapshot().records["source"].dropna().iloc[0]
    arr = zarr.open_array(store=store._root.zarr_store, path=f"{src}/features/scene", mode="r+")
    arr[0] = np.nan
    res = run("verify", url, "--json")
    assert res.exit_code == 1
    doc = json.loads(res.output)
    assert doc["ok"] is False and "scene" in doc["problems"][0] and "non-finite" in doc["problems"][0]
    res = CliRunner().invoke(cli, ["store", "verify", url])
    assert res.exit_code == 1 and "DAMAGED" in res.output and "'scene'" in res.output


def test_compact(url: str) -> None:
    before = json.loads(run("info", url, "--json").output)
    res = run("compact", url)
    assert res.exit_code == 0 and "compacted" in res.output
    after = json.loads(run("info", url, "--json").output)
    assert after["base"] is not None and after["commits_pending_compaction"] == 0
    for name in ("scene", "audio"):
        for k in ("done", "failed", "quarantined", "rows"):
            assert after["experts"][name][k] == before["experts"][name][k]
    assert run("verify", url).exit_code == 0


def test_missing_store_is_one_line_error(tmp_path) -> None:
    missing = str(tmp_path / "nope.zarr")
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [sys.executable, "-m", "videxperts.pipelines.cli", "store", "compact", missing],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"videxperts: error: no feature store at {missing}"
    assert not Path(missing).exists()  # compact must not create a store
