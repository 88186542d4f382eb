"""The synthetic dataset: real, decodable media whose content matches the manifest and captions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from videxperts.pipelines.synth import plan, render, synthesize, vocab
from videxperts.storage.manifest import read_captions, read_manifest

HAAR = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"


@pytest.fixture(scope="module")
def rows(synth_dataset: Path) -> list[dict]:
    return read_manifest(synth_dataset, check_files=True).to_pylist()


@pytest.fixture(scope="module")
def captions(synth_dataset: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in sorted(read_captions(synth_dataset).to_pylist(), key=lambda r: (r["video_id"], r["caption_idx"])):
        out.setdefault(r["video_id"], []).append(r["caption"])
    return out


def test_fixture_covers_every_case(rows: list[dict]) -> None:
    assert len(rows) == 6
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert any(r["has_face"] for r in rows) and not all(r["has_face"] for r in rows)
    assert any(not r["has_audio"] for r in rows) and any(r["has_audio"] for r in rows)
    for r in rows:
        assert r["rel_path"] == f"videos/{r['video_id']}.mp4"
        assert (r["spoken"] is None) == (not r["has_audio"]) == (r["sound"] is None)


def test_media_matches_manifest_in_pyav_decord_torchcodec(rows: list[dict]) -> None:
    import av
    import decord
    from torchcodec.decoders import AudioDecoder, VideoDecoder

    for r in rows:
        path = r["path"]
        with av.open(path) as c:
            vs = c.streams.video[0]
            assert vs.codec_context.name == "h264"
            assert (vs.codec_context.width, vs.codec_context.height) == (r["width"], r["height"]) == (320, 240)
            assert float(vs.average_rate) == r["fps"] == 25.0
            assert bool(c.streams.audio) == r["has_audio"]
            if r["has_audio"]:
                assert c.streams.audio[0].codec_context.name == "aac"
            pyav_frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        assert len(pyav_frames) == r["num_frames"] == round(r["duration"] * r["fps"])

        vr = decord.VideoReader(path)
        assert len(vr) == r["num_frames"]
        mid = r["num_frames"] // 2
        dec_frame = vr[mid].asnumpy()
        assert dec_frame.shape == (240, 320, 3)
        assert np.abs(dec_frame.astype(int) - pyav_frames[mid]).mean() < 2.0  # same picture from both decoders

        tc = VideoDecoder(path)
        assert tc.metadata.num_frames == r["num_frames"]
        assert abs(tc.metadata.duration_seconds - r["duration"]) < 0.05
        tc_frame = tc[mid].permute(1, 2, 0).numpy()
        assert np.abs(tc_frame.astype(int) - pyav_frames[mid]).mean() < 2.0
        if r["has_audio"]:
            samples = AudioDecoder(path).get_all_samples()
            assert samples.sample_rate == r["sample_rate"] == vocab.SAMPLE_RATE
            assert abs(samples.data.shape[1] / samples.sample_rate - r["duration"]) < 0.15
            assert float(samples.data.abs().max()) > 0.3  # the spoken word is loud and clear


def test_captions_mention_every_generating_attribute(rows: list[dict], captions: dict[str, list[str]]) -> None:
    for r in rows:
        caps = [c.lower() for c in captions[r["video_id"]]]
        assert len(caps) >= 5 and len(set(caps)) == len(caps)
        for c in caps:  # every caption names the scene and each shape with its colour and direction
            assert r["scene"] in c
            for shape, color, direction in zip(r["shapes"], r["colors"], r["directions"], strict=True):
                assert f"{color} {shape}" in c
                assert direction in c
        full = caps[0]  # the first caption names everything
        assert f'"{r["word"]}"' in full
        if r["has_audio"]:
            assert f'"{r["spoken"]}"' in full
            assert vocab.SOUND_KEYWORDS[r["sound"]] in full
        else:
            assert "no audio" in full or "no sound" in full
        assert any(k in full for k in vocab.FACE_KEYWORDS) == r["has_face"]
        if not r["has_face"]:
            assert not any(k in c for c in caps for k in vocab.FACE_KEYWORDS)


def _frame(path: str, index: int) -> np.ndarray:
    import decord

    return decord.VideoReader(path)[index].asnumpy()


def test_face_clip_face_is_found_by_haar(rows: list[dict]) -> None:
    cascade = cv2.CascadeClassifier(HAAR)
    face_rows = [r for r in rows if r["has_face"]]
    assert face_rows
    for r in face_rows:
        x, y, w, h = r["face_box"]
        for idx in (0, r["num_frames"] // 2, r["num_frames"] - 1):
            gray = cv2.cvtColor(_frame(r["path"], idx), cv2.COLOR_RGB2GRAY)
            found = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5)
            inside = [f for f in found if x <= f[0] + f[2] / 2 <= x + w and y <= f[1] + f[3] / 2 <= y + h]
            assert inside, f"{r['video_id']} frame {idx}: no face found in {r['face_box']} (found {found})"


def _color_centroid(img: np.ndarray, rgb: tuple[int, int, int], r: dict) -> np.ndarray | None:
    """Centre of the pixels of one shape colour, outside the text box and the face photo (None if hidden)."""
    dist = np.abs(img.astype(int) - np.array(rgb)).sum(axis=2)
    mask = dist < 60
    bx, by, bw, bh = r["word_box"]
    mask[by : by + bh, bx : bx + bw] = False  # the printed word's white letters
    if r["face_box"]:
        fx, fy, fw, fh = r["face_box"]
        mask[fy : fy + fh, fx : fx + fw] = False
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()]) if xs.size > 100 else None  # the smallest star covers ~400 px


def test_shapes_move_in_the_stated_direction(rows: list[dict]) -> None:
    import decord

    step = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    for r in rows:
        vr = decord.VideoReader(r["path"])
        idx = list(range(0, r["num_frames"], 5))
        frames = vr.get_batch(idx).asnumpy()
        for color, direction in zip(r["colors"], r["directions"], strict=True):
            seen = [(i, c) for i, f in zip(idx, frames, strict=True) if (c := _color_centroid(f, vocab.COLORS[color], r)) is not None]
            assert len(seen) >= 2 and seen[-1][0] - seen[0][0] >= r["num_frames"] // 3, f"{r['video_id']}: {color} shape mostly hidden"
            move = seen[-1][1] - seen[0][1]
            assert float(np.dot(move, step[direction])) > 30, f"{r['video_id']}: {color} shape moved {move}, expected {direction}"


def test_printed_word_shown_only_in_its_interval(rows: list[dict]) -> None:
    for r in rows:
        bx, by, bw, bh = r["word_box"]
        inside = int((r["word_start"] + r["word_end"]) / 2 * r["fps"])
        box = _frame(r["path"], inside)[by : by + bh, bx : bx + bw]
        gray = box.mean(axis=2)
        assert (gray > 200).mean() > 0.05 and (gray < 60).mean() > 0.4  # white letters on a dark box
        if r["word_end"] < r["duration"] - 0.2:
            after = _frame(r["path"], r["num_frames"] - 1)[by : by + bh, bx : bx + bw].mean(axis=2)
            assert (after < 60).mean() < 0.4 or r["scene"] == "night sky"


def test_same_seed_is_byte_identical_and_worker_count_free(tmp_path: Path, synth_dataset: Path) -> None:
    again = tmp_path / "again"
    summary = synthesize(again, 6, seed=0, workers=1, min_seconds=2.0, max_seconds=2.0, progress=False)
    assert summary["generated"] == 6
    for name in ("manifest.parquet", "captions.parquet"):
        assert (again / name).read_bytes() == (synth_dataset / name).read_bytes()
    for mp4 in sorted((synth_dataset / "videos").glob("*.mp4")):
        assert (again / "videos" / mp4.name).read_bytes() == mp4.read_bytes(), mp4.name
    other = tmp_path / "other"
    synthesize(other, 6, seed=1, workers=1, min_seconds=2.0, max_seconds=2.0, progress=False)
    assert pq.read_table(other / "manifest.parquet") != pq.read_table(synth_dataset / "manifest.parquet")


def test_rerun_reuses_complete_clips_and_redoes_broken_ones(tmp_path: Path) -> None:
    out = tmp_path / "d"
    first = synthesize(out, 3, seed=5, workers=1, min_seconds=1.0, max_seconds=1.0, progress=False)
    assert (first["generated"], first["reused"]) == (3, 0)
    second = synthesize(out, 3, seed=5, workers=1, min_seconds=1.0, max_seconds=1.0, progress=False)
    assert (second["generated"], second["reused"]) == (0, 3)
    victim = out / "videos" / "synth00001.mp4"
    good = victim.read_bytes()
    victim.write_bytes(good[: len(good) // 2])  # a crash mid-copy or a damaged file
    third = synthesize(out, 3, seed=5, workers=1, min_seconds=1.0, max_seconds=1.0, progress=False)
    assert (third["generated"], third["reused"]) == (1, 2)
    assert victim.read_bytes() == good
    assert not list((out / "videos").glob(".*"))  # no temporary files left behind


def test_plan_has_exact_proportions_and_depends_only_on_seed() -> None:
    flags = plan.plan_dataset(200, seed=3)
    assert [sum(p["split"] == s for p in flags) for s in ("train", "val", "test")] == [140, 30, 30]
    assert sum(p["has_face"] for p in flags) == 80
    assert sum(not p["has_audio"] for p in flags) == 20
    assert flags == plan.plan_dataset(200, seed=3) and flags != plan.plan_dataset(200, seed=4)
    a = plan.plan_specs(10, seed=3)
    assert json.dumps([s.captions for s in a]) == json.dumps([s.captions for s in plan.plan_specs(10, seed=3)])


def test_espeak_speech_is_real_audio() -> None:
    voice = render.speak("seven")
    assert 0.2 < voice.size / vocab.SAMPLE_RATE < 2.0
    assert abs(float(np.abs(voice).max()) - 0.7) < 1e-3


def test_cli_synth_json_and_info(tmp_path: Path, synth_dataset: Path) -> None:
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("videxperts")
    out = tmp_path / "cli"
    res = subprocess.run([str(exe), "data", "synth", "--out", str(out), "--videos", "2", "--workers", "1",
                          "--min-seconds", "1", "--max-seconds", "1", "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["videos"] == 2 and summary["generated"] == 2
    assert len(list((out / "videos").glob("*.mp4"))) == 2
    shutil.rmtree(out)
    info = subprocess.run([str(exe), "data", "info", str(synth_dataset), "--json"], capture_output=True, text=True, timeout=120)
    assert info.returncode == 0, info.stderr
    doc = json.loads(info.stdout)
    assert doc["videos"] == 6 and doc["captions"] >= 30
    assert sum(s["videos"] for s in doc["splits"].values()) == 6
    assert doc["captions_per_video"]["min"] >= 5
    assert sum(doc["attributes"]["scene"].values()) == 6
