"""End to end through the CLI on a real store: `videxperts train` (two seeds, MLflow curves,
the rebuilt vocabulary as JSON), `evaluate` (a run, COCO 1K folds, a two-model ensemble) and
`report` (i2t/t2i R@k and rsum, mean (std) over seeds)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from tests.training.matching.store import write_match_store
from tests.training.matching.tiny import TINY, tiny_cfg
from videxperts.errors import UserError
from videxperts.pipelines.evaluate_job import evaluate_matching


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    return {**env, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def _cli(*args: str) -> str:
    exe = Path(sys.executable).with_name("videxperts")
    out = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=900, env=_env(), check=False)  # noqa: S603
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("match-cli")
    raw = {**TINY, "name": "tiny-match", "train": {"batch_size": 20, "epochs": 2, "seed": 0},
           "eval": {"batch_size": 16, "fold_size": 2, "protocol": "f30k_1k"}}
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))
    store, data = write_match_store(tiny_cfg(), {"train": 16, "val": 4, "test": 4}, root)
    work = root / "work"
    summary = json.loads(_cli("train", "--config", str(root / "tiny.yaml"), "--store", store, "--data", data,
                              "--seeds", "0,1", "--work-dir", str(work), "--experiment", "match", "--json"))
    return {"root": root, "store": store, "data": data, "work": work, "summary": summary}


def test_train_logs_losses_rewards_attention_and_validation(trained: dict) -> None:
    s = trained["summary"]
    client = MlflowClient(s["tracking_uri"])
    run = s["seeds"]["0"]["run_id"]
    names = set(client.get_run(run).data.metrics)
    assert {"train/hinge", "train/id", "train/decoder", "train/pg_discrete", "train/pg_continuous", "train/reward",
            "train/attn_img_mean", "train/attn_txt_std", "val/rsum", "val/rsum_select", "test.rsum"} <= names
    assert len(client.get_metric_history(run, "train/pg_discrete")) == 2  # one point per epoch
    (vocab,) = (trained["work"] / "vocab").glob("tiny-match-*.json")
    words = json.loads(vocab.read_text())["words"]
    assert words[:4] == ["<pad>", "<start>", "<end>", "<unk>"] and "dog" in words


def test_evaluate_a_run_folds_and_an_ensemble(trained: dict) -> None:
    s, base = trained["summary"], ["--store", trained["store"], "--data", trained["data"],
                                   "--work-dir", str(trained["work"]), "--json"]
    a, b = s["seeds"]["0"]["run_id"], s["seeds"]["1"]["run_id"]
    one = json.loads(_cli("evaluate", "--run", a, *base))
    assert one["metrics"]["rsum"] == pytest.approx(s["seeds"]["0"]["test"]["rsum"])  # same numbers as training's test
    # in process from here (each CLI start costs seconds): the same job the command runs
    uri, store, data = s["tracking_uri"], trained["store"], trained["data"]
    folds = evaluate_matching([a], store, data, "test", uri, protocol="coco_1k")
    assert folds["protocol"] == "coco_1k" and folds["images"] == 4
    m = folds["metrics"]
    assert m["rsum"] == pytest.approx(sum(m[f"{d}_r{k}"] for d in ("i2t", "t2i") for k in (1, 5, 10)))
    both = evaluate_matching([a, b], store, data, "test", uri)
    assert both["model"] == "tiny-match+tiny-match" and 0 <= both["metrics"]["rsum"] <= 600
    with pytest.raises(UserError, match="matching needs --data"):
        evaluate_matching([a], store, None, "test", uri)


def test_report_has_the_matching_columns(trained: dict) -> None:
    out = _cli("report", "--experiment", "match", "--work-dir", str(trained["work"]))
    for header in ("i2t R@1", "t2i R@1", "rsum"):
        assert header in out
    row = next(line for line in out.splitlines() if line.startswith("tiny-match"))
    assert re.search(r"\d+\.\d \(\d+\.\d\)", row) and row.split()[-1] == "2"  # mean (std) over 2 seeds
