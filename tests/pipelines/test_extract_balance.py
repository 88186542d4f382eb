"""Stage balancing (pipelines/extract_balance.py): allocation, calibration, cache, CPU accounting.

Pure functions and a real expert calibrated on CPU; the Ray job with a ten-times heavier expert
is in test_extract_balance_job.py.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from videxperts.pipelines.extract_balance import (
    Allocation,
    CostCache,
    allocate,
    core_use,
    cpu_breakdown,
    measure_expert,
    synthetic_view,
    units_per_video_second,
)


def test_heavy_stage_gets_the_cores_and_shares_add_up_to_the_cluster() -> None:
    costs = {"decode": 0.05, "heavy": 1.0, "light_a": 0.1, "light_b": 0.1}
    a = allocate(costs, 2.0)
    assert a["heavy"].threads == 2 and a["heavy"].replicas == 1
    assert all(a[s].threads == 1 and a[s].replicas == 1 for s in ("decode", "light_a", "light_b"))
    assert math.isclose(sum(x.share for x in a.values()), 2.0, rel_tol=1e-3)
    # what Ray is asked for fits the cluster: fractions below 1, whole numbers above
    asked = sum(x.ray_cpus * x.replicas for x in a.values())
    assert asked <= 2.0 + 1e-9
    assert all(x.ray_cpus < 1 or float(x.ray_cpus).is_integer() for x in a.values())
    # the old layout (one single-threaded actor per stage) leaves cores idle; this one does not
    old = {s: Allocation(s, 0.5, 1, 1, 0.5) for s in costs}
    assert core_use(costs, old, 2.0) < 0.7 <= 0.9 <= core_use(costs, a, 2.0)


def test_no_oversubscription_threads_follow_the_shares() -> None:
    """Every actor's threads = its share rounded (at least 1, at most max_threads): no all-core pools."""
    costs = {"decode": 0.2, "a": 3.0, "b": 1.0, "c": 0.5, "d": 0.01}
    for cpus in (1.0, 2.0, 4.0, 16.0, 64.0):
        a = allocate(costs, cpus, max_threads=4)
        for x in a.values():
            per = x.share / x.replicas
            assert 1 <= x.threads <= max(1, min(4, math.floor(cpus)))
            assert x.threads == max(1, min(4, math.floor(cpus), round(per))) or x.name == "decode"
        busy_threads = sum(x.threads * x.replicas for x in a.values() if x.share >= 1)
        assert busy_threads <= cpus + 1e-9 + sum(1 for x in a.values() if x.share >= 1)  # rounding only
    big = allocate(costs, 64.0, max_threads=4)
    assert big["a"].replicas > 1 and big["decode"].replicas >= 2 and big["decode"].threads == 1


def test_fixed_stages_and_minimum_replicas() -> None:
    a = allocate({"decode": 0.1, "x": 0.3}, 2.0, fixed={"text:minilm": 0.25, "gpu": 0.5}, min_replicas={"x": 3})
    assert a["x"].replicas == 3 and a["text:minilm"].share == 0.25
    assert math.isclose(a["decode"].share + a["x"].share, 1.25, rel_tol=1e-3)


def test_cost_cache_roundtrip_and_bad_file(tmp_path: Path) -> None:
    p = tmp_path / "balance.json"
    c = CostCache(p)
    c.put("k", {"observed": 0.5})
    c.save()
    assert CostCache(p).get("k")["observed"] == 0.5
    p.write_text("not json")
    assert CostCache(p).get("k") is None  # a damaged cache is ignored, the job measures again


def test_cpu_breakdown_separates_models_from_everything_else() -> None:
    reports = [
        {"stage": "decode", "process_cpu_s": 5.0, "startup_cpu_s": 2.0, "calls_cpu_s": 2.5, "model_cpu_s": 0.0},
        {"stage": "r2p1d", "process_cpu_s": 30.0, "startup_cpu_s": 4.0, "calls_cpu_s": 25.0, "model_cpu_s": 22.0},
        {"stage": "writer", "process_cpu_s": 3.0, "startup_cpu_s": 2.0, "calls_cpu_s": 0.5, "model_cpu_s": 0.0},
    ]
    b = cpu_breakdown(reports, driver_cpu_s=4.0, daemons_cpu_s=6.0, calibration_cpu_s=1.0)
    assert (b["models"], b["expert_prep"], b["decode"], b["writers"]) == (22.0, 3.0, 2.5, 0.5)
    assert b["actors_startup"] == 8.0 and b["ray_between_calls"] == 2.0
    assert b["total"] == 22 + 3 + 2.5 + 0.5 + 8 + 2 + 4 + 6 + 1
    assert math.isclose(sum(b["share"].values()), 1.0, rel_tol=1e-3)
    assert math.isclose(b["outside_models_share"], 1 - 22 / b["total"], rel_tol=1e-3)


@pytest.mark.parametrize("name", ["r2p1d", "audio", "inst"])
def test_synthetic_views_hold_exactly_the_requested_units(name: str) -> None:
    from videxperts.extractors.registry import build_expert

    cfg = {"r2p1d": {"variant": "r2plus1d_18", "fps": 8.0, "size": 32, "crop": 32, "clip_len": 4, "clip_stride": 4},
           "audio": {"variant": "vggish_small"}, "inst": {"variant": "resnet18", "size": 32}}[name]
    e = build_expert(name, cfg)
    data, times = e.units(synthetic_view(e, 3))
    assert len(times) == 3
    assert units_per_video_second(e.needs) == pytest.approx({"r2p1d": 2.0, "audio": 1 / 0.96, "inst": 1.0}[name])


def test_calibration_measures_each_batch_on_the_device_and_picks_the_cheapest() -> None:
    import torch

    from videxperts.extractors.registry import build_expert

    torch.set_num_threads(1)
    e = build_expert("inst", {"variant": "resnet18", "size": 32, "batch_size": 8})
    e.load("cpu")
    m = measure_expert(e, "cpu", candidates=(1, 2, 4), budget_s=60)
    assert m["clock"] == "cpu" and m["device"] == "cpu" and m["threads"] == 1
    assert set(m["unit_s"]) <= {"1", "2", "4"} and "1" in m["unit_s"]
    assert m["batch_size"] in (1, 2, 4) and m["unit_s"][str(m["batch_size"])] == min(m["unit_s"].values())
    assert m["cost_per_video_s"] == pytest.approx(m["unit_s"][str(m["batch_size"])] * 1.0, rel=1e-3)
    assert e.batch_size == 8  # the expert's own setting is restored
