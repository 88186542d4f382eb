"""An expert's identity covers every setting that changes its output (issue 14, item 2).

Before: only backbone, weights, sampling, extractor version and dtype were compared, so the
demo profile with ``audio.final_relu: true`` was mixed into a store made without it, and the
refusal suggested an ``--overwrite-expert`` option that ``extract`` did not have.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videxperts.extractors.registry import load_profile, resolved_settings
from videxperts.pipelines.extract import ExtractConfig, Pipeline
from videxperts.pipelines.extract_plan import plan_experts
from videxperts.storage.store import FeatureStore, ProvenanceMismatchError

REPO = Path(__file__).resolve().parents[2]


def _profile_with(tmp_path: Path, expert: str, **settings: object) -> Path:
    prof = load_profile("demo")
    prof.pop("source", None)
    prof["experts"][expert] = {**prof["experts"][expert], **settings}
    path = tmp_path / f"{expert}-changed.yaml"
    path.write_text(yaml.safe_dump(prof))
    return path


def _register(store: FeatureStore, profile: dict, names: list[str]) -> None:
    for p in plan_experts(profile, names, None).values():
        store.ensure_expert(p.name, p.dim, p.provenance)


@pytest.mark.parametrize(("expert", "setting", "value"), [
    ("audio", "final_relu", True), ("audio", "quantize", True), ("scene", "crop", 80),
    ("face", "margin", 0.3), ("face", "min_neighbors", 3), ("ocr", "min_confidence", 0.9),
])
def test_a_changed_setting_is_refused_naming_it(tmp_path: Path, expert: str, setting: str, value: object) -> None:
    store = FeatureStore.open(str(tmp_path / "s.zarr"), mode="a")
    _register(store, load_profile("demo"), [expert])
    changed = load_profile(_profile_with(tmp_path, expert, **{setting: value}))
    with pytest.raises(ProvenanceMismatchError, match=setting) as err:
        _register(store, changed, [expert])
    assert "\n" not in str(err.value) and f"--overwrite-expert {expert}" in str(err.value)


def test_speed_settings_and_defaults_are_not_part_of_the_identity(tmp_path: Path) -> None:
    store = FeatureStore.open(str(tmp_path / "s.zarr"), mode="a")
    _register(store, load_profile("demo"), ["audio", "scene"])
    # batch size, device, replicas only change speed; writing a default equals omitting it
    same = load_profile(_profile_with(tmp_path, "audio", batch_size=4, device="cpu", replicas=2, final_relu=False))
    _register(store, same, ["audio"])
    assert resolved_settings("audio", load_profile("demo"))["final_relu"] is False


def _pipeline(tmp_path: Path, data: Path, store: Path, profile: str, overwrite: list[str]) -> Pipeline:
    cfg = ExtractConfig(input=str(data), out=str(store), experts=["audio"], profile=profile, tracking=False,
                        captions=False, progress=False, overwrite_experts=overwrite)
    return Pipeline(cfg)


def test_overwrite_expert_discards_and_reregisters(tmp_path: Path, synth_dataset: Path, monkeypatch) -> None:
    import videxperts.cluster.local as local

    monkeypatch.setattr(local, "connect", lambda *a, **k: {"num_cpus": 1.0, "num_gpus": 0.0})
    store_path = tmp_path / "s.zarr"
    store = FeatureStore.open(str(store_path), mode="a")
    _register(store, load_profile("demo"), ["audio"])
    with store.writer("w") as w:  # one video "done" with the old settings
        import numpy as np

        w.write("some-video", "audio", np.zeros((1, 128), "float32"), np.zeros(1, "float32"))
    changed = str(_profile_with(tmp_path, "audio", final_relu=True))
    with pytest.raises(ProvenanceMismatchError, match="final_relu"):
        _pipeline(tmp_path, synth_dataset, store_path, changed, [])._open()
    p = _pipeline(tmp_path, synth_dataset, store_path, changed, ["audio"])
    p._open()
    fresh = FeatureStore.open(str(store_path), mode="r")
    assert fresh.experts["audio"]["provenance"]["final_relu"] is True
    assert fresh.pending(["some-video"], ["audio"]) == {"some-video": ["audio"]}  # old features gone
    assert len(p.todo) == len(p.inputs.videos)


def test_cli_refusal_names_a_real_option(tmp_path: Path, synth_dataset: Path) -> None:
    store_path = tmp_path / "s.zarr"
    _register(FeatureStore.open(str(store_path), mode="a"), load_profile("demo"), ["audio"])
    changed = _profile_with(tmp_path, "audio", final_relu=True)
    base = [sys.executable, "-m", "videxperts.pipelines.cli", "extract", str(synth_dataset), "--out",
            str(store_path), "--experts", "audio", "--profile", str(changed), "--no-tracking", "--no-captions"]
    proc = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "--overwrite-expert audio" in proc.stderr, proc.stderr[-2000:]
    proc = subprocess.run([*base, "--overwrite-expert", "scene"], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and "not an expert or text encoder of this job" in proc.stderr, proc.stderr[-2000:]
