"""The bench scripts' shared summaries and PNG charts (bench/report.py); no timing is asserted."""

from __future__ import annotations

import struct

import pytest
from PIL import Image

from bench import bench_extract
from bench.report import Panel, bar_chart, fmt, pct, ratio, summarize

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_MAGIC and head[12:16] == b"IHDR", head
    return struct.unpack(">II", head[16:24])


def test_summarize_median_min_max() -> None:
    s = summarize([12.25, 8.71, 14.68, 9.05])
    assert (s["median"], s["min"], s["max"], s["n"]) == (pytest.approx(10.65), 8.71, 14.68, 4)
    assert summarize([3.0, 1.0, 2.0])["median"] == 2.0
    with pytest.raises(ValueError, match="no measurements"):
        summarize([])


def test_ratio_is_taken_per_repetition_not_of_medians() -> None:
    # per-repetition ratios 1, 3, 1 -> median 1; the ratio of the medians would be 6 / 2 = 3
    r = ratio([1.0, 6.0, 10.0], [1.0, 2.0, 10.0])
    assert r["values"] == [1.0, 3.0, 1.0] and r["median"] == 1.0 and r["max"] == 3.0
    assert ratio([1.1, 0.9], [1.0, 1.0], offset=-1)["values"] == pytest.approx([0.1, -0.1])
    with pytest.raises(ValueError, match="2 numerators vs 1"):
        ratio([1.0, 2.0], [1.0])


def test_formatting() -> None:
    s = summarize([1.9, 2.31, 2.62])
    assert fmt(s, unit="x") == "2.31x [1.90-2.62]"
    assert pct(summarize([0.005, -0.012, 0.03])) == "+0.5 % [-1.2..+3.0]"


def test_bar_chart_writes_a_png(tmp_path) -> None:
    out = bar_chart(tmp_path / "sub" / "x.png", [
        Panel("throughput", "video-s per s", {"once": {"wall": summarize([2.6, 1.3, 3.9]), "cpu": summarize([3.0, 1.0])},
                                              "per expert": {"wall": summarize([2.05, 1.94])}}),
        Panel("time", "s", {"a": summarize([8.3, 7.7]), "b": summarize([324.0])}, log=True, hline=(10, "target"),
              width=0.5),
    ], title="t")
    assert out.exists()
    assert png_size(out) == (int(4.6 * 1.5 * 100), 380)
    assert 5_000 < out.stat().st_size < 150_000
    with Image.open(out) as im:
        im.verify()
    with pytest.raises(ValueError, match="no panels"):
        bar_chart(tmp_path / "y.png", [])


def test_extract_summary_and_plot(tmp_path) -> None:
    """bench_extract's per-repetition ratios and throughputs, and its two-panel PNG."""
    keys = ["decode_once_s", "per_expert_total_s", "workers_2_s", "bare_total_s", "bare_compute_s",
            "pipeline_expert_busy_s", "pipeline_expert_cpu_s", "bare_compute_cpu_s",
            "cpu_decode_once_s", "cpu_per_expert_s", "cpu_workers_2_s", "cpu_bare_s"]
    reps = [dict(zip(keys, v, strict=True)) for v in (
        [10.0, 25.0, 8.0, 20.0, 12.0, 30.0, 3.6, 3.5, 20.0, 40.0, 22.0, 18.0],
        [12.0, 24.0, 10.0, 24.0, 13.0, 28.0, 3.5, 3.5, 24.0, 36.0, 24.0, 16.0],
        [11.0, 33.0, 11.0, 22.0, 12.5, 29.0, 3.7, 3.6, 22.0, 44.0, 20.0, 20.0],
    )]
    s = bench_extract.summarise(reps, videos=12, video_s=48.0)
    assert s["ratios"]["decode_once_speedup"]["values"] == [2.5, 2.0, 3.0]
    assert s["ratios"]["decode_once_speedup"]["median"] == 2.5
    assert s["ratios"]["scaling_1_to_2"]["values"] == [1.25, 1.2, 1.0]
    assert s["ratios"]["end_to_end_overhead"]["values"] == pytest.approx([-0.5, -0.5, -0.5])
    assert s["throughput"]["decode_once"]["videos_per_s"]["median"] == pytest.approx(12 / 11)
    assert s["throughput"]["per_expert"]["video_s_per_cpu_s"]["values"] == pytest.approx([1.2, 48 / 36, 48 / 44])
    assert s["figures"]["workers_2_s"]["min"] == 8.0
    out = bench_extract.plot(s, tmp_path / "extract.png", "test")
    assert png_size(out) == (920, 380)
    assert 5_000 < out.stat().st_size < 150_000


def test_train_summary_pairs_ratios_with_the_plain_loop_of_the_same_repetition(tmp_path) -> None:
    """A failed run keeps its slot, so the ratio pairs only repetitions where both sides ran."""
    import argparse

    from bench import bench_train

    def run(workers: int, epoch_s: float) -> dict:
        per_worker = 128 / epoch_s / workers
        return {"workers": workers, "epoch_time_s": epoch_s, "samples_per_s_worker": per_worker,
                "total_samples_per_s": per_worker * workers, "peak_rss_mb": 4600.0 + workers}

    rows = bench_train.summarise({("plain", 1): [run(1, 5.0), None, run(1, 4.0)],
                                  ("ray", 2): [run(2, 10.0), run(2, 8.0), run(2, 5.0)]})
    ray = next(r for r in rows if r["mode"] == "ray")
    assert ray["ratio_vs_plain"]["values"] == pytest.approx([0.5, 0.8])
    assert ray["epoch_time_s"]["median"] == 8.0 and ray["total_samples_per_s"]["max"] == pytest.approx(25.6)
    out = bench_train.chart(rows, tmp_path / "train.png",
                            argparse.Namespace(config="configs/train/msrvtt_ce.yaml", videos=128, batch_size=64, reps=3))
    assert png_size(out) == (920, 380)
