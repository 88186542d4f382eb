"""`videxperts extract` end to end on a real Ray head: counts, captions, MLflow, resume, hostile inputs.

Plus the pure rules (retry policy, accounting, resource fitting, input listing) without Ray.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.media import make_clip, make_hostile_corpus
from tests.pipelines.extract_helpers import (
    CHEAP_EXPERTS,
    done_records,
    extract_cmd,
    ray_cluster,
    run_extract_cli,
)
from videxperts.pipelines.extract_accounting import (
    CRASH,
    ERROR,
    FAIL,
    INPUT,
    QUARANTINE,
    RETRY,
    Accounting,
    RetryPolicy,
)
from videxperts.pipelines.extract_inputs import VIDEO_SUFFIXES, list_inputs
from videxperts.pipelines.extract_plan import StagePlan, fit_resources

N_CLIPS = 4


# ------------------------------------------------------------------ rules without Ray
def test_retry_policy_input_errors_fail_at_once_crashes_quarantine() -> None:
    p = RetryPolicy(max_retries=2, quarantine_after=2)
    assert p.decide(INPUT, attempts=1, crashes=0) == FAIL
    assert [p.decide(ERROR, a, 0) for a in (1, 2, 3)] == [RETRY, RETRY, FAIL]
    assert [p.decide(CRASH, 0, c) for c in (1, 2)] == [RETRY, QUARANTINE]


def test_accounting_invariant_is_enforced() -> None:
    acc = Accounting(inputs=5, skipped=1)
    for outcome in ("done", "done", "failed", "quarantined"):
        acc.record_outcome(outcome)
    s = acc.summary(pending=0, interrupted=False, store="x")
    assert (s["done"], s["failed"], s["quarantined"], s["skipped"]) == (2, 1, 1, 1)
    acc.record_outcome("done")
    with pytest.raises(AssertionError, match="accounting broken"):
        acc.check(0)


def test_fit_resources_scales_to_the_cluster() -> None:
    stages = [StagePlan("decode", 1, 1.0), StagePlan("scene", 1, 1.0, num_gpus=0.5), StagePlan("audio", 1, 2.0)]
    fitted, notes = fit_resources(stages, cluster_cpus=2.0, cluster_gpus=0.0)
    assert all(s.num_gpus == 0 for s in fitted)
    assert sum(s.num_cpus * s.replicas for s in fitted) <= 2.0 + 1e-9
    assert any("no GPUs" in n for n in notes)
    gpu = [StagePlan("a", 2, 1.0, num_gpus=1.0), StagePlan("b", 2, 1.0, num_gpus=1.0)]
    fitted, _ = fit_resources(gpu, cluster_cpus=16, cluster_gpus=1.0)
    assert [s.num_gpus for s in fitted] == [0.25, 0.25]  # four actors share one GPU


def test_list_inputs_folder_and_glob(tmp_path: Path) -> None:
    """A missing input and clashing ids: tests/test_fault_bad_configs.py, tests/pipelines/test_extract_inputs.py."""
    (tmp_path / "sub").mkdir()
    make_clip(tmp_path / "a.mp4", seconds=0.5)
    (tmp_path / "sub" / "a.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a video")
    folder = list_inputs(str(tmp_path))
    assert sorted(v.video_id for v in folder.videos) == ["a", "sub__a"]
    assert all(Path(v.path).is_absolute() for v in folder.videos)
    assert len(list_inputs(str(tmp_path / "**" / "*.mp4")).videos) == 2


# ------------------------------------------------------------------ on a real Ray head
@pytest.fixture(scope="module")
def head(tmp_path_factory: pytest.TempPathFactory):
    with ray_cluster(tmp_path_factory.mktemp("ray"), head_cpus=2) as info:
        yield info


@pytest.mark.slow
def test_extract_dataset_then_resume_skips_everything(head: dict, tmp_path: Path) -> None:
    from videxperts.pipelines.synth import synthesize
    from videxperts.storage.manifest import read_captions
    from videxperts.storage.store import FeatureStore

    data = tmp_path / "data"
    synthesize(data, videos=N_CLIPS, seed=0, workers=1, min_seconds=2.0, max_seconds=3.0, progress=False)
    n_captions = read_captions(data).num_rows
    store = tmp_path / "work" / "store.zarr"
    s = run_extract_cli(extract_cmd(data, store, head["gcs_address"], "--experts", CHEAP_EXPERTS), head)
    assert (s["inputs"], s["done"], s["failed"], s["quarantined"], s["skipped"]) == (N_CLIPS, N_CLIPS, 0, 0, 0)
    assert s["stages"]["decode"]["items"] == N_CLIPS  # decoded once per video, not once per expert
    assert s["stages"]["audio"]["items"] == s["stages"]["scene"]["items"] == N_CLIPS
    fs = FeatureStore.open(str(store), mode="r")
    info = fs.info()
    assert {e: info["experts"][e]["done"] for e in ("audio", "scene")} == {"audio": N_CLIPS, "scene": N_CLIPS}
    assert info["text_encoders"]["minilm"]["captions"] == n_captions and n_captions >= N_CLIPS
    assert fs.verify() == []
    assert max(done_records(store).values()) == 1
    # the job is one MLflow run beside the store, with params and the failure report
    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{store.parent / 'mlflow.db'}")  # not mlflow.set_tracking_uri: it sets the env var
    run = client.get_run(s["mlflow_run_id"])
    assert run.data.params["experts"] == "audio,scene" and run.data.params["decoder"] == "decord"
    assert run.data.params["scene.weights"].startswith("random-init")
    assert run.data.metrics["done"] == N_CLIPS
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"failures.csv", "summary.json"} <= artifacts

    again = run_extract_cli(extract_cmd(data, store, head["gcs_address"], "--experts", CHEAP_EXPERTS,
                                        "--no-tracking"), head)
    assert (again["skipped"], again["done"], again["stages"]) == (N_CLIPS, 0, {})
    assert again["captions"]["todo"] == 0
    assert max(done_records(store).values()) == 1


@pytest.mark.slow
def test_profile_replicas_give_a_slow_expert_more_actors(head: dict, tmp_path: Path) -> None:
    """``replicas: 2`` on one expert: its pool has two actors, the other pools one; all videos done once."""
    import yaml

    from videxperts.extractors.registry import load_profile

    profile = load_profile("demo")
    profile["experts"] = {"audio": {**profile["experts"]["audio"], "replicas": 2},
                          "scene": profile["experts"]["scene"]}
    path = tmp_path / "two_audio.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in profile.items() if k != "source"}))
    clips = tmp_path / "clips"
    clips.mkdir()
    for i in range(N_CLIPS):
        make_clip(clips / f"c{i}.mp4", seconds=1.5)
    store = tmp_path / "store.zarr"
    s = run_extract_cli(extract_cmd(clips, store, head["gcs_address"], "--experts", CHEAP_EXPERTS, "--profile",
                                    str(path), "--no-tracking"), head)
    assert s["actors"]["audio"] == 2 and s["actors"]["scene"] == s["actors"]["decode"] == 1
    assert (s["done"], s["stages"]["audio"]["items"]) == (N_CLIPS, N_CLIPS)
    assert 1 <= s["stages"]["audio"]["worker_processes"] <= 2
    assert max(done_records(store).values()) == 1


@pytest.mark.slow
def test_hostile_folder_every_input_accounted_for(head: dict, tmp_path: Path) -> None:
    from videxperts.storage.store import FeatureStore

    corpus = make_hostile_corpus(tmp_path / "hostile")
    for name in ("long_sparse", "huge_frame", "vfr", "rotated"):  # slow or already covered by decoder tests
        corpus.pop(name).unlink()
    store = tmp_path / "store.zarr"
    s = run_extract_cli(extract_cmd(tmp_path / "hostile", store, head["gcs_address"], "--experts", "audio",
                                    "--no-tracking", "--max-retries", "1"), head)
    files = [p for p in (tmp_path / "hostile").rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    assert s["inputs"] == len(files)
    assert s["done"] + s["failed"] + s["quarantined"] + s["skipped"] == s["inputs"]
    status = FeatureStore.open(str(store), mode="r").status_table().to_pandas().set_index("video_id")
    assert len(status) == len(files)  # every input has a record, each with a state
    ids = {Path(v.path): v.video_id for v in list_inputs(str(tmp_path / "hostile")).videos}
    assert set(ids) == {p.resolve() for p in files}
    vid = {name: ids[path.resolve()] for name, path in corpus.items()}
    vid["good_faststart"] = ids[(tmp_path / "hostile" / "good_faststart.mp4").resolve()]
    for good in ("good", "good_faststart", "unicode_path", "no_audio", "audio_only", "dup_stem", "dup_nested", "dup_flat"):
        assert status.loc[vid[good], "state"] == "done", (good, status.loc[vid[good]].to_dict())
    # ids that a naive mapping would merge: each file is done under its own id
    dups = [vid[n] for n in ("good", "dup_stem", "dup_nested", "dup_flat")]
    assert len(set(dups)) == 4, dups
    assert (vid["good"], vid["dup_stem"]) == ("good.mp4", "good.mkv")
    for bad in ("zero_byte", "random_bytes", "truncated"):
        row = status.loc[vid[bad]]
        assert row["state"] == "failed" and row["error_class"], (bad, row.to_dict())
        assert bad in str(row["message"])  # the message names the input
    assert status.loc["zero_byte", "error_class"] == "EmptyFileError"
    assert status.loc["zero_byte", "attempts"] == 1  # typed input errors are not retried
    shutil.rmtree(tmp_path / "hostile")
