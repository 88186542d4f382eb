"""`data synth --timed`: long clips whose timed events are really in the media, in their intervals."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest

from videxperts.pipelines.commands.data import dataset_info
from videxperts.pipelines.synth import synthesize
from videxperts.pipelines.synth.render import render_background
from videxperts.pipelines.synth.timed import SHORT_EVENT_S, paragraph, plan_timed_specs
from videxperts.pipelines.synth.vocab import FPS, SAMPLE_RATE
from videxperts.storage.manifest import read_dataset


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dense")
    summary = synthesize(out, 3, seed=0, workers=1, min_seconds=6.0, max_seconds=9.0, progress=False, timed=True)
    assert summary["timed"] and summary["videos"] == 3
    return out


def test_plan_is_deterministic_and_well_formed():
    a, b = plan_timed_specs(4, seed=3, min_seconds=10, max_seconds=40), plan_timed_specs(4, seed=3, min_seconds=10, max_seconds=40)
    assert a == b and [s.spec_hash() for s in a] == [s.spec_hash() for s in b]
    assert plan_timed_specs(4, seed=4)[1].spec_hash() != a[1].spec_hash()
    for s in a:
        assert 10 <= s.duration <= 40 and 2 <= len(s.events) <= 5
        assert [e.start_frame for e in s.events] == sorted(e.start_frame for e in s.events)
        for e in s.events:
            assert 0 <= e.start < e.end <= s.duration
            assert s.has_audio or e.kind in ("shape", "word")
    assert SHORT_EVENT_S < 64 / 25 and any(abs((e.end - e.start) - SHORT_EVENT_S) < 1e-9 for e in a[0].events)
    assert any(not s.has_audio for s in plan_timed_specs(10, seed=0))  # a silent clip: missing audio modality


def test_captions_times_and_clause_boundaries(dense: Path):
    manifest, caps = read_dataset(dense)
    info = dataset_info(dense)
    # per split: the evaluator's reference file and BMT's 7-column meta file
    durations = dict(zip(manifest.column("video_id").to_pylist(), manifest.column("duration").to_pylist(), strict=True))
    for split in {r["split"] for r in caps.to_pylist()}:
        ref = json.loads((dense / "references" / f"{split}.json").read_text())
        mine = [r for r in caps.to_pylist() if r["split"] == split and r["start"] is not None]
        assert sum(len(v["sentences"]) for v in ref.values()) == len(mine)
        assert all(v["duration"] == durations[k] for k, v in ref.items())
        meta = (dense / "meta" / f"{split}.csv").read_text().splitlines()
        assert meta[0].split("\t") == ["video_id", "caption", "start", "end", "duration", "phase", "idx"]
        first = meta[1].split("\t")
        assert (first[1], float(first[2]), first[5], first[6]) == (mine[0]["caption"], mine[0]["start"], split, "0")
    n_events = sum(len(k) for k in manifest.column("event_kinds").to_pylist())
    assert info["timed_captions"] == n_events and info["captions"] == n_events + 3
    assert sum(info["attributes"]["event_kinds"].values()) == n_events and "events" not in info["attributes"]
    rows = caps.to_pylist()
    for m in manifest.to_pylist():
        events = json.loads(m["events"])
        mine = [r for r in rows if r["video_id"] == m["video_id"]]
        timed, para = [r for r in mine if r["start"] is not None], [r for r in mine if r["start"] is None]
        assert len(timed) == len(events) and len(para) == 1
        for r, e in zip(timed, events, strict=True):
            assert (r["start"], r["end"], r["caption"], r["event"]) == (e["start"], e["end"], e["sentence"], e["kind"])
            words = r["caption"].split()
            assert r["boundaries"][0] == 0 and r["boundaries"] == sorted(set(r["boundaries"]))
            assert all(words[b] in ("and", "over") or b == 0 for b in r["boundaries"])
        # the paragraph: the event sentences in time order, each after the first opened by "then"
        assert para[0]["caption"] == " then ".join(e["sentence"] for e in events)
        want, pos = [], 0
        for k, r in enumerate(timed):
            lead = int(k > 0)  # the joining "then" opens the sentence's first clause
            want += [pos] + [pos + lead + b for b in r["boundaries"][1:]]
            pos += lead + len(r["caption"].split())
        assert para[0]["boundaries"] == want


def _decode(path: Path) -> tuple[list[np.ndarray], np.ndarray | None]:
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    audio = None
    with av.open(str(path)) as c:
        if c.streams.audio:
            audio = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    return frames, audio


def test_each_event_is_in_the_media_in_its_interval(dense: Path):
    specs = plan_timed_specs(3, seed=0, min_seconds=6.0, max_seconds=9.0)
    checked = set()
    for spec in specs:
        frames, audio = _decode(dense / "videos" / f"{spec.video_id}.mp4")
        assert len(frames) == spec.num_frames
        bg = render_background(spec.scene, spec.scene_seed).astype(np.int16)
        visual = [e for e in spec.events if e.kind in ("shape", "word")]
        for i, frame in enumerate(frames):
            diff = np.abs(frame.astype(np.int16) - bg).max(axis=2)
            active = [e for e in visual if e.start_frame <= i < e.end_frame]
            if not active:  # nothing drawn: only compression noise over the background
                assert (diff > 60).mean() < 0.002, (spec.video_id, i)
        for e in visual:
            mid = frames[(e.start_frame + e.end_frame) // 2]
            if e.kind == "word":
                bx, by = e.box
                assert mid[by + 2 : by + 8, bx + 2 : bx + 8].mean() < 60  # the dark text box is there
            else:
                diff = np.abs(mid.astype(np.int16) - bg).max(axis=2)
                assert (diff > 60).sum() > 200  # the shape is on screen mid-interval
            checked.add(e.kind)
        if spec.has_audio:
            assert audio is not None

            def rms(a: float, b: float, audio: np.ndarray = audio) -> float:
                return float(np.sqrt(np.mean(audio[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] ** 2)))

            heard = [(e.start, e.end) for e in spec.events if e.kind in ("voice", "sound")]
            for a, b in heard:
                assert rms(a + 0.1, min(b, a + 0.6)) > 0.01
                checked.add("audio")
            quiet = [t / 10 for t in range(int(spec.duration * 10) - 2)
                     if not any(a - 0.3 <= t / 10 <= b + 0.3 for a, b in heard)]  # fmt: skip
            for t in quiet:
                assert rms(t, t + 0.1) < 0.003, (spec.video_id, t)
        else:
            assert audio is None
    assert {"shape", "word"} <= checked
    assert paragraph(specs[0].events)[1][0] == 0 and FPS == 25
