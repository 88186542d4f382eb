"""Fault suite, bad configurations: each mistake is one line on stderr naming the input, exit code 2.

Every case runs the installed ``videxperts`` console script as a user would, so whatever
reaches stderr (logging, Ray, MLflow, a traceback) counts. Each case also checks that
nothing was started on the way: no store, no work dir (no tracking db, no Ray directory).
Cases tested elsewhere and not repeated here: an unreachable tracking server
(tests/pipelines/test_extract_tracking.py, tests/training/test_train_cli.py) and a manifest
with a repeated video id (tests/pipelines/test_extract_inputs.py).
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.media import make_clip
from tests.training.synth_store import tiny_cfg, write_store

EXE = str(Path(sys.executable).with_name("videxperts"))


class _Evil:
    def __reduce__(self):
        return (subprocess.call, (["touch", "/tmp/videxperts-pwned"],))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real clip, a small real store (experts a: 12, s: 6; text t1: 8), its splits, a matching config."""
    from videxperts.training.checkpoint import save_model_checkpoint
    from videxperts.training.retrieval.config import load_config
    from videxperts.training.retrieval.data import synthetic_splits
    from videxperts.training.retrieval.models import build_model

    root = tmp_path_factory.mktemp("badcfg")
    cfg = tiny_cfg("tiny-bad", epochs=1)
    store = write_store(synthetic_splits(load_config(cfg), {"train": 8, "val": 4, "test": 4}, seed=3),
                        root / "store.zarr", root / "data")
    wrong = {**cfg, "data": {**cfg["data"], "experts": {**cfg["data"]["experts"], "a": {"dim": 13}}}}
    save_model_checkpoint(root / "wrong-dims" / "model.pt", load_config(wrong),
                          {"model": build_model(load_config(wrong)).state_dict()})
    (root / "garbage.pt").write_bytes(b"this is not a checkpoint\n" * 40)
    # a pickle that would run a command if unpickled (torch.load(weights_only=True) must refuse it)
    (root / "unsafe.pt").write_bytes(pickle.dumps(_Evil()))
    # a manifest whose train split has one video of the store (the rest are val)
    table = pq.read_table(root / "data" / "manifest.parquet").to_pylist()
    first = next(r["video_id"] for r in table if r["split"] == "train")
    (root / "one-train").mkdir()
    pq.write_table(pa.Table.from_pylist([{**r, "split": r["split"] if r["split"] != "train" or r["video_id"] == first
                                          else "val"} for r in table]), root / "one-train" / "manifest.parquet")
    return {"root": root, "cfg": cfg, "store": store, "data": str(root / "data"),
            "clip": str(make_clip(root / "clip.mp4", seconds=1.0))}


def _write(env: dict[str, Any], name: str, text: str) -> str:
    path = env["root"] / name
    path.write_text(text)
    return str(path)


def _train_cfg(env: dict[str, Any], name: str, change: Callable[[dict], None], top: bool = False) -> str:
    cfg = yaml.safe_load(yaml.safe_dump(env["cfg"]))  # a deep copy
    change(cfg if top else cfg["data"])
    return _write(env, name, yaml.safe_dump(cfg))


def _extract(env: dict[str, Any], *extra: str, inp: str | None = None) -> list[str]:
    return ["extract", inp or env["clip"], "--out", str(env["root"] / "never" / "store.zarr"), *extra]


def _train(env: dict[str, Any], config: str, store: str | None = None, data: str | None = None) -> list[str]:
    return ["train", "--config", config, "--store", store or env["store"], "--data", data or env["data"],
            "--work-dir", str(env["root"] / "never")]


# case id -> (argv, strings the one line must contain)
CASES: dict[str, Callable[[dict[str, Any]], tuple[list[str], list[str]]]] = {
    # ---- videxperts extract
    "extract-unknown-expert": lambda e: (_extract(e, "--experts", "audio,sound"), ["unknown expert 'sound'"]),
    "extract-missing-input": lambda e: (_extract(e, inp=str(e["root"] / "nope.mp4")),
                                        [str(e["root"] / "nope.mp4"), "no such"]),
    "extract-missing-profile": lambda e: (_extract(e, "--profile", "no-such-profile"),
                                          ["no-such-profile.yaml", "extraction profile not found"]),
    "extract-profile-yaml-syntax": lambda e: (
        _extract(e, "--profile", p := _write(e, "syntax.yaml", "name: x\nexperts: [audio\n")),
        [p, "not valid YAML", "line 3"]),
    "extract-profile-unknown-key": lambda e: (
        _extract(e, "--profile", p := _write(e, "key.yaml", "name: x\nexperts: {audio: {}}\nsurprise: 1\n")),
        [p, "unknown key 'surprise'"]),
    "extract-profile-unknown-expert": lambda e: (
        _extract(e, "--profile", p := _write(e, "expert.yaml", "experts: {audio: {}, flow: {}}\n")),
        [p, "experts.flow"]),
    "extract-profile-unknown-expert-key": lambda e: (
        _extract(e, "--profile", p := _write(e, "ekey.yaml", "experts: {audio: {sampel_rate: 16000}}\n")),
        [p, "experts.audio.sampel_rate"]),
    "extract-profile-wrong-type": lambda e: (
        _extract(e, "--profile", p := _write(e, "type.yaml", "experts: {audio: {batch_size: lots}}\n")),
        [p, "experts.audio.batch_size", "int", "'lots'"]),
    "extract-profile-decoder-wrong-type": lambda e: (
        _extract(e, "--profile", p := _write(e, "dec.yaml", "decoder: {window_seconds: soon}\nexperts: {audio: {}}\n")),
        [p, "decoder.window_seconds", "'soon'"]),
    "extract-profile-bad-value": lambda e: (
        _extract(e, "--profile", p := _write(e, "value.yaml", "experts: {audio: {sample_rate: -5}}\n")),
        [p, "experts.audio", "sample_rate", "-5"]),
    # ---- videxperts train
    "train-unknown-expert": lambda e: (
        _train(e, p := _train_cfg(e, "t-expert.yaml", lambda d: d["experts"].update(ocr={"dim": 4}))),
        [p, "data.experts.ocr", e["store"], "it has: a, s"]),
    "train-wrong-expert-dim": lambda e: (
        _train(e, p := _train_cfg(e, "t-dim.yaml", lambda d: d["experts"]["a"].update(dim=13))),
        [p, "data.experts.a.dim is 13", e["store"], "12-dim"]),
    "train-wrong-text-dim": lambda e: (
        _train(e, p := _train_cfg(e, "t-tdim.yaml", lambda d: d["text"].update(dim=9))),
        [p, "data.text.dim is 9", "8-dim"]),
    "train-unknown-text-encoder": lambda e: (
        _train(e, p := _train_cfg(e, "t-enc.yaml", lambda d: d["text"].update(encoder="bert"))),
        [p, "data.text.encoder", "'bert'", "it has: t1"]),
    "train-missing-store": lambda e: (
        _train(e, _train_cfg(e, "t-ok.yaml", lambda d: None), store=str(e["root"] / "nostore.zarr")),
        ["feature store not found", str(e["root"] / "nostore.zarr")]),
    "train-store-is-not-a-store": lambda e: (
        _train(e, _train_cfg(e, "t-ok.yaml", lambda d: None), store=e["data"]), [e["data"], "no feature store"]),
    "train-no-store-given": lambda e: (
        ["train", "--config", _train_cfg(e, "t-ok.yaml", lambda d: None), "--work-dir", str(e["root"] / "never")],
        ["--store is required"]),
    "train-missing-data-dir": lambda e: (
        _train(e, _train_cfg(e, "t-ok.yaml", lambda d: None), data=str(e["root"] / "nodata")),
        [str(e["root"] / "nodata")]),
    "train-missing-config": lambda e: (_train(e, str(e["root"] / "none.yaml")),
                                       [str(e["root"] / "none.yaml"), "training config not found"]),
    "train-yaml-syntax": lambda e: (_train(e, p := _write(e, "t-syntax.yaml", "name: x\ndata: {experts: [a\n")),
                                    [p, "not valid YAML", "line 3"]),
    "train-no-task": lambda e: (_train(e, p := _train_cfg(e, "t-task.yaml", lambda c: c.pop("task"), top=True)),
                                [p, "task: missing required key", "add 'task: retrieval'"]),
    "train-unknown-task": lambda e: (
        _train(e, p := _train_cfg(e, "t-utask.yaml", lambda c: c.update(task="segmentation"), top=True)),
        [p, "unknown task 'segmentation'", "retrieval"]),
    "train-nan-lr": lambda e: (_train(e, p := _write(e, "t-nan.yaml", yaml.safe_dump(e["cfg"]).replace(
        "lr: 0.01", "lr: .nan"))), [p, "optim.lr", "finite"]),
    "train-infinite-margin": lambda e: (_train(e, p := _write(e, "t-inf.yaml", yaml.safe_dump(e["cfg"]).replace(
        "margin: 0.2", "margin: .inf"))), [p, "loss.margin", "finite"]),
    "train-one-training-video": lambda e: (
        _train(e, _train_cfg(e, "t-ok.yaml", lambda d: None), data=str(e["root"] / "one-train")),
        ["split 'train' has 1 videos", e["store"], "at least 2"]),
    "train-garbage-teacher": lambda e: (
        _train(e, p := _train_cfg(e, "t-teach.yaml", lambda c: c.update(teachtext={"teachers": [
            str(e["root"] / "garbage.pt")]}), top=True)),
        [p, "teachtext.teachers", "garbage.pt", "not a readable checkpoint"]),
    "train-unsafe-teacher": lambda e: (
        _train(e, p := _train_cfg(e, "t-unsafe.yaml", lambda c: c.update(teachtext={"teachers": [
            str(e["root"] / "unsafe.pt")]}), top=True)),
        [p, "teachtext.teachers", "unsafe content refused"]),
    "train-teacher-neither-file-nor-run": lambda e: (
        _train(e, p := _train_cfg(e, "t-noteach.yaml", lambda c: c.update(teachtext={"teachers": ["best-one"]}),
                                  top=True)),
        [p, "teachtext.teachers", "best-one", "neither a checkpoint file nor an MLflow run id"]),
    # ---- videxperts evaluate
    "evaluate-unsafe-checkpoint": lambda e: (
        ["evaluate", "--checkpoint", p := str(e["root"] / "unsafe.pt"), "--store", e["store"], "--data", e["data"],
         "--work-dir", str(e["root"] / "never")], [p, "not a videxperts checkpoint (unsafe content refused)"]),
    "evaluate-missing-checkpoint": lambda e: (
        ["evaluate", "--checkpoint", str(e["root"] / "none.pt"), "--store", e["store"], "--data", e["data"],
         "--work-dir", str(e["root"] / "never")], ["checkpoint not found", str(e["root"] / "none.pt")]),
    "evaluate-wrong-dims": lambda e: (
        ["evaluate", "--checkpoint", p := str(e["root"] / "wrong-dims" / "model.pt"), "--store", e["store"],
         "--data", e["data"], "--work-dir", str(e["root"] / "never")],
        [f"checkpoint {p}", "data.experts.a.dim is 13", "12-dim"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_config_is_one_clear_line(case: str, env: dict[str, Any]) -> None:
    args, names = CASES[case](env)
    res = subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2, res.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("videxperts: error: "), res.stderr[-3000:]
    for name in names:
        assert name in lines[0], (name, lines[0])
    assert res.stdout == ""
    assert not (env["root"] / "never").exists()  # no store, no tracking db, no Ray dir: nothing started
    assert not Path("/tmp/videxperts-pwned").exists()  # no pickle was ever executed
