"""A real job (Ray, decoders, torch experts) where one expert is far heavier than the others.

The balancer must measure that (calibration in the experts' own actors), give the heavy stage
the cores (two torch threads on this 2-CPU cluster) and the light ones one thread each, set
those threads explicitly in every actor (read back from the actors: no all-core pools), and the
job's busy-time accounting must agree with the measurement. Nothing here depends on wall time.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.media import make_clip
from tests.pipelines.extract_helpers import extract_cmd, ray_cluster, run_extract_cli
from videxperts.pipelines.extract_balance import Allocation, core_use

HEAVY = {"variant": "r2plus1d_18", "weights": None, "seed": 0, "fps": 8.0, "size": 64, "crop": 64, "clip_len": 8,
         "clip_stride": 4, "batch_size": 4}
LIGHT_INST = {"variant": "resnet18", "weights": None, "seed": 0, "fps": 1.0, "size": 32, "batch_size": 4}
LIGHT_AUDIO = {"variant": "vggish_small", "weights": None, "seed": 0, "batch_size": 4}


@pytest.mark.slow
def test_heavy_expert_gets_the_cores_and_threads_are_explicit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("VIDEXPERTS_CACHE", str(tmp_path / "cache"))  # a cold cache: this job calibrates
    profile = {"name": "heavy", "description": "one heavy expert", "decoder": {"backend": "decord"},
               "experts": {"r2p1d": HEAVY, "inst": LIGHT_INST, "audio": LIGHT_AUDIO}}
    prof = tmp_path / "heavy.yaml"
    prof.write_text(yaml.safe_dump(profile))
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(3):
        make_clip(clips / f"c{i}.mp4", seconds=1.5, size=(96, 64))
    with ray_cluster(tmp_path / "ray", head_cpus=2) as head:
        s = run_extract_cli(extract_cmd(clips, tmp_path / "s.zarr", head["gcs_address"], "--profile", str(prof),
                                        "--no-tracking"), head)
    assert s["done"] == 3
    bal = s["balance"]["stages"]
    costs = {n: bal[n]["cost_per_video_s"] for n in ("decode", "r2p1d", "inst", "audio")}
    # measured on this machine, in the experts' actors: the heavy one costs at least 10x each light one
    assert bal["r2p1d"]["cost_source"] == "calibrated" and bal["inst"]["cost_source"] == "calibrated"
    assert costs["r2p1d"] >= 10 * max(costs["inst"], costs["audio"])
    assert all(bal[n]["batch_size"] in (1, 2, 4, 8, 16) for n in ("r2p1d", "inst", "audio"))
    # allocation: the heavy stage gets both cores as torch threads, the others one thread each
    assert (bal["r2p1d"]["threads"], bal["r2p1d"]["replicas"]) == (2, 1)
    assert all(bal[n]["threads"] == 1 for n in ("decode", "inst", "audio"))
    assert abs(sum(bal[n]["share"] for n in bal) - 2.0) < 0.01
    assert s["balance"]["predicted_core_use"] >= 0.9
    # one single-threaded actor per stage leaves the heavy stage's second core idle: whatever the
    # machine's cost ratios (decode's share varies), the balanced allocation keeps about twice the cores busy
    old = core_use(costs, {n: Allocation(n, 0.5, 1, 1, 0.5) for n in costs}, 2.0)
    assert old < s["balance"]["predicted_core_use"]
    assert s["balance"]["predicted_core_use"] >= min(1.0, 1.9 * old)
    # every actor set its threads explicitly to its share (read back from the actors themselves)
    threads = {a["stage"]: a["torch_threads"] for a in s["cpu_s"]["actors"] if a["torch_threads"] is not None}
    assert threads == {"r2p1d": 2, "inst": 1, "audio": 1}
    assert sum(threads.values()) <= 2 + 2  # the heavy stage's 2 + one each for the mostly idle light stages
    # busy-time accounting agrees with the calibration: the heavy stage did most of the work
    st = s["stages"]
    assert st["r2p1d"]["busy_s"] > st["inst"]["busy_s"] and st["r2p1d"]["busy_s"] > st["audio"]["busy_s"]
    assert st["r2p1d"]["cpu_s"] > 3 * (st["inst"]["cpu_s"] + st["audio"]["cpu_s"])
    cpu = s["cpu_s"]
    assert cpu["models"] > 0 and abs(sum(cpu["share"].values()) - 1.0) < 0.01
    assert cpu["models"] + cpu["expert_prep"] <= st["r2p1d"]["cpu_s"] + st["inst"]["cpu_s"] + st["audio"]["cpu_s"] + 0.05
    # what the job observed is kept for the next job on this machine
    assert bal["r2p1d"]["observed_cpu_s_per_video_s"] > 0
    assert (tmp_path / "cache" / "balance.json").is_file()
