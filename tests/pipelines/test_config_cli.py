"""`videxperts config list|cp|show` and `train --set` through the installed entry point."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from videxperts.pipelines.cli import main
from videxperts.resources import config_names
from videxperts.training.config import ConfigError, load_config
from videxperts.training.describe import describe_model

EXE = str(Path(sys.executable).with_name("videxperts"))


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=120, cwd=cwd)  # noqa: S603


def test_list_json_names_every_shipped_config_with_a_description() -> None:
    res = _run("config", "list", "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert set(out) == {"extract", "train"}
    for kind, rows in out.items():
        assert [r["name"] for r in rows] == config_names(kind)
        assert all(r["description"] and "\n" not in r["description"] for r in rows)
        assert all(Path(r["path"]).is_file() for r in rows)
    by_name = {r["name"]: r["description"] for r in out["extract"]}
    assert by_name["demo"].startswith("CPU demo profile")
    text = _run("config", "list", "--kind", "train").stdout
    assert "demo_ce" in text and "importance/01_scene" in text and "paper" not in text


def test_cp_copies_a_config_that_loads_outside_the_checkout(tmp_path: Path) -> None:
    res = _run("config", "cp", "importance/03_r2p1d", "mine.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    copied = tmp_path / "mine.yaml"
    assert yaml.safe_load(copied.read_text())["base"] == "demo_ce"  # relative ../demo_ce.yaml made portable
    assert load_config(str(copied)).to_dict() == load_config("importance/03_r2p1d").to_dict()
    again = _run("config", "cp", "importance/03_r2p1d", "mine.yaml", cwd=tmp_path)
    assert again.returncode == 2 and again.stderr.strip() == f"videxperts: error: {copied.name}: already exists (pass --force to overwrite)"
    folder = _run("config", "cp", "paper", str(tmp_path))
    assert folder.returncode == 0 and (tmp_path / "paper.yaml").read_text().startswith("# The Collaborative")
    unknown = _run("config", "cp", "nope", str(tmp_path))
    assert unknown.returncode == 2 and len(unknown.stderr.strip().splitlines()) == 1
    assert unknown.stderr.startswith("videxperts: error: nope: no shipped config of that name (extract: ")
    assert "demo" in unknown.stderr and "train: " in unknown.stderr


def test_show_applies_base_and_overrides() -> None:
    res = _run("config", "show", "msrvtt_moee", "--set", "train.epochs=3", "--set", "optim.lr=1e-3")
    assert res.returncode == 0, res.stderr
    shown = yaml.safe_load(res.stdout)
    assert shown["train"]["epochs"] == 3 and shown["optim"]["lr"] == 0.001 and shown["model"]["variant"] == "moee"


def test_overrides_are_typed_and_checked_like_the_file() -> None:
    cfg = load_config("demo_ce", overrides=["model.shared_dim=128", "data.text.max_captions=10",
                                            "train.epochs=2", "loss.margin=0.2"])
    assert (cfg.model.shared_dim, cfg.train.epochs, cfg.loss.margin) == (128, 2, 0.2)
    with pytest.raises(ConfigError, match=r"^--set model\.shared_dim=big: model\.shared_dim: expected an integer"):
        load_config("demo_ce", overrides=["train.epochs=2", "model.shared_dim=big"])


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lrr=0.1", "--set optim.lrr=0.1: optim.lrr: unknown key (allowed: "),
    ("optim.lr=abc", "--set optim.lr=abc: optim.lr: expected a number, got 'abc'"),
    ("optim.lr", "--set optim.lr: expected KEY=VALUE with a dotted key"),
    ("optim.lr=[1", "--set optim.lr=[1: value is not valid YAML (line 1, column 3"),
    ("train.epochs.x=3", "--set train.epochs.x: train.epochs is 15, not a mapping"),
])
def test_train_set_errors_are_one_line(override: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--config", "demo_ce", "--describe", "--set", override])
    lines = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(lines) == 1, lines
    assert lines[0].startswith(f"videxperts: error: {message}"), lines[0]


def test_train_describe_with_set_through_the_entry_point() -> None:
    res = _run("train", "--config", "demo_ce", "--describe", "--json", "--set", "model.shared_dim=128")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["parameters"] < describe_model("demo_ce")["parameters"]
