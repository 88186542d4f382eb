"""Extraction under faults, on a real Ray head: a killed expert actor, SIGINT, SIGKILL of the driver.

Invariants checked every time: every input is accounted for, the store verifies clean, and
no (video, expert) has more than one committed ``done`` record (nothing duplicated).
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest

from tests.pipelines.extract_helpers import (
    CHEAP_EXPERTS,
    done_records,
    extract_cmd,
    kill_named_actor,
    make_dataset,
    ray_cluster,
    run_extract_cli,
    start_extract_cli,
    wait_for_done,
)

N_CLIPS = 8
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    with ray_cluster(tmp_path_factory.mktemp("ray"), head_cpus=2) as info:
        yield info


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), N_CLIPS, seconds=3.0)


def _store_ok(store: Path) -> dict:
    from videxperts.storage.store import FeatureStore

    fs = FeatureStore.open(str(store), mode="r")
    assert fs.verify() == []
    records = done_records(store)
    assert not records or max(records.values()) == 1, "a (video, expert) was committed twice"
    return fs.info()


def test_killed_expert_actor_is_restarted_and_nothing_is_lost(head: dict, data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    err = tmp_path / "stderr.txt"
    proc = start_extract_cli(extract_cmd(data, store, head["gcs_address"], "--experts", CHEAP_EXPERTS,
                                         "--no-tracking", "--no-captions"), head, err)
    try:
        wait_for_done(proc, err, 1)
        assert kill_named_actor(head, "-scene-0")
        out, _ = proc.communicate(timeout=400)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err.read_text()[-3000:]
    s = json.loads(out.strip().splitlines()[-1])
    assert (s["done"], s["failed"], s["quarantined"]) == (N_CLIPS, 0, 0)
    # Ray restarted the actor: a second process did scene work after the kill
    assert s["stages"]["scene"]["worker_processes"] >= 2
    info = _store_ok(store)
    assert info["experts"]["scene"]["done"] == info["experts"]["audio"]["done"] == N_CLIPS


def test_sigint_stops_cleanly_sigkill_resumes(head: dict, data: Path, tmp_path: Path) -> None:
    store = tmp_path / "store.zarr"
    cmd = extract_cmd(data, store, head["gcs_address"], "--experts", CHEAP_EXPERTS, "--no-tracking",
                      "--no-captions", "--commit-every", "1")
    # 1. Ctrl-C: a clean stop with a summary and a consistent store
    err = tmp_path / "sigint.txt"
    proc = start_extract_cli(cmd, head, err)
    try:
        wait_for_done(proc, err, 1)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err.read_text()[-3000:]
    s = json.loads(out.strip().splitlines()[-1])
    assert s["interrupted"] is True and s["done"] >= 1
    assert s["done"] + s["failed"] + s["quarantined"] + s["skipped"] + s["pending"] == N_CLIPS
    info = _store_ok(store)
    assert min(info["experts"][e]["done"] for e in ("audio", "scene")) >= s["done"]

    # 2. SIGKILL of the driver mid-job: nothing can be flushed; only committed work survives
    err = tmp_path / "sigkill.txt"
    proc = start_extract_cli(cmd, head, err)
    try:
        seen = wait_for_done(proc, err, 1)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _store_ok(store)
    committed = min(before["experts"][e]["done"] for e in ("audio", "scene"))
    assert committed >= s["done"] + seen  # a video counted done was committed (commit every item)
    time.sleep(2)  # let Ray reap the dead driver's actors

    # 3. the same command resumes: only the rest is redone, and everything ends done exactly once
    final = run_extract_cli(cmd, head)
    assert final["skipped"] >= committed
    assert final["done"] + final["skipped"] == N_CLIPS and final["failed"] == final["quarantined"] == 0
    info = _store_ok(store)
    assert info["experts"]["scene"]["done"] == info["experts"]["audio"]["done"] == N_CLIPS
    assert set(done_records(store).values()) == {1} and len(done_records(store)) == 2 * N_CLIPS
