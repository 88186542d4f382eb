"""Training config: typed loading, `base:` inheritance, flattening, and one clear error per mistake."""

import copy
from pathlib import Path

import pytest
import yaml

from videxperts.errors import UserError
from videxperts.training.retrieval.config import CompatConfig, ConfigError, TrainConfig, load_config

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "train"

MINIMAL = {
    "task": "retrieval",
    "name": "t",
    "data": {
        "experts": {
            "scene": {"dim": 16, "temporal": "mean"},
            "audio": {"dim": 8, "temporal": "vlad", "clusters": 2, "max_tokens": 5},
        },
        "text": {"encoder": "minilm", "dim": 12, "max_tokens": 7},
    },
}


def test_published_msrvtt_values():
    cfg = load_config(CONFIGS / "msrvtt_ce.yaml")
    assert isinstance(cfg, TrainConfig)
    assert cfg.expert_names == sorted(["scene", "inst", "rgb", "i3d", "r2p1d", "audio", "speech", "ocr", "face"])
    assert list(cfg.data.experts) == cfg.expert_names
    assert {n: cfg.data.experts[n].clusters for n in ("audio", "ocr", "speech")} == {"audio": 8, "ocr": 43, "speech": 19}
    assert {n: cfg.data.experts[n].max_tokens for n in ("audio", "ocr", "speech")} == {"audio": 29, "ocr": 49, "speech": 32}
    assert cfg.data.experts["face"].dim == 512 and cfg.data.experts["scene"].dim == 2208
    assert (cfg.data.text.dim, cfg.data.text.max_tokens) == (768, 37)
    assert (cfg.model.text_vlad.clusters, cfg.model.text_vlad.ghosts, cfg.model.shared_dim) == (28, 1, 768)
    assert cfg.loss.margin == 0.0938 and cfg.optim.lr == 0.1 and cfg.optim.name == "ranger"
    assert (cfg.train.batch_size, cfg.train.epochs) == (64, 100)
    assert cfg.teachtext is None


def test_published_lsmdc_values():
    cfg = load_config(CONFIGS / "lsmdc_ce.yaml")
    e = cfg.data.experts
    assert e["face"].dim == 128
    assert (e["audio"].clusters, e["ocr"].clusters, e["speech"].clusters) == (3, 30, 5)
    assert (e["audio"].max_tokens, e["ocr"].max_tokens, e["speech"].max_tokens) == (11, 6, 35)
    assert (cfg.data.text.dim, cfg.data.text.max_tokens) == (300, 36)
    assert (cfg.model.text_vlad.clusters, cfg.model.text_vlad.ghosts) == (43, 0)
    assert (cfg.loss.margin, cfg.optim.lr, cfg.train.batch_size, cfg.train.epochs) == (0.1213, 0.01, 256, 15)


def test_base_inheritance_overrides_only_what_it_names():
    ce = load_config(CONFIGS / "msrvtt_ce.yaml")
    moee = load_config(CONFIGS / "msrvtt_moee.yaml")
    assert moee.model.variant == "moee" and moee.name == "msrvtt-moee"
    assert {n: moee.data.experts[n].clusters for n in ("audio", "ocr", "speech")} == {"audio": 27, "ocr": 20, "speech": 45}
    assert moee.data.experts["audio"].dim == 128  # inherited inside the merged mapping
    assert (moee.model.text_vlad.clusters, moee.model.text_vlad.ghosts) == (50, 2)
    assert moee.optim == ce.optim and moee.data.text.encoder == ce.data.text.encoder
    for stem, variant in [("msrvtt_concat", "concat"), ("msrvtt_moee_uniform", "moee_uniform"),
                          ("msrvtt_ce_no_cg", "ce_no_cg")]:
        cfg = load_config(CONFIGS / f"{stem}.yaml")
        assert cfg.model.variant == variant and cfg.data == ce.data
    assert load_config(CONFIGS / "msrvtt_concat.yaml").model.text_vlad.clusters == 39


def test_published_msrvtt_moee_has_its_own_margin_and_token_limits():
    moee = load_config(CONFIGS / "msrvtt_moee.yaml")
    assert moee.loss.margin == 0.1264
    e = moee.data.experts
    assert (moee.data.text.max_tokens, e["ocr"].max_tokens, e["audio"].max_tokens, e["speech"].max_tokens) == \
        (19, 3, 17, 32)


def test_compat_switches_default_off_and_published_configs_turn_them_on():
    assert load_config(MINIMAL).model.compat == CompatConfig()
    for name in ("msrvtt_ce", "lsmdc_ce", "msrvtt_ce_no_cg", "lsmdc_moee"):
        assert load_config(CONFIGS / f"{name}.yaml").model.compat.sequential_gating
    for name in ("msrvtt_concat", "lsmdc_concat"):
        assert load_config(CONFIGS / f"{name}.yaml").model.compat.concat_mixture
    raw = copy.deepcopy(MINIMAL)
    raw["model"] = {"variant": "concat", "compat": {"concat_order": ["scene", "audio"]}}
    cfg = load_config(raw)
    assert cfg.model.compat.concat_order == ["scene", "audio"]
    assert load_config(cfg.to_dict()) == cfg


def test_null_expert_in_derived_config_removes_it(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(MINIMAL))
    (tmp_path / "sub.yaml").write_text("base: base.yaml\nname: sub\ndata: {experts: {audio: null}}\n")
    cfg = load_config(tmp_path / "sub.yaml")
    assert cfg.expert_names == ["scene"] and cfg.name == "sub"


def test_round_trip_and_flatten():
    cfg = load_config(CONFIGS / "msrvtt_ce.yaml")
    assert load_config(cfg.to_dict()) == load_config(copy.deepcopy(cfg.to_dict()))
    again = load_config(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict()
    flat = cfg.flatten()
    assert flat["model.variant"] == "ce"
    assert flat["data.experts.audio.clusters"] == 8
    assert flat["model.text_vlad.clusters"] == 28
    assert flat["teachtext"] is None
    assert all(not isinstance(v, (dict, list)) for v in flat.values())
    tt = load_config({**MINIMAL, "teachtext": {"teachers": ["runs:/a", "b.pt"], "denoise": {"threshold": 80}}})
    assert tt.flatten()["teachtext.teachers"] == "runs:/a,b.pt"
    assert tt.teachtext.denoise.threshold == 80 and tt.teachtext.weight == 1.0


def test_defaults_fill_optional_sections():
    cfg = load_config(MINIMAL)
    assert cfg.model.variant == "ce" and cfg.model.num_g_layers == 3 and cfg.optim.name == "ranger"
    assert cfg.data.text.max_captions == 20 and cfg.data.experts["audio"].pooled_dim == 16


def _broken(path_keys, value):
    raw = copy.deepcopy(MINIMAL)
    node = raw
    for k in path_keys[:-1]:
        node = node.setdefault(k, {})
    if value is KeyError:
        del node[path_keys[-1]]
    else:
        node[path_keys[-1]] = value
    return raw


@pytest.mark.parametrize("keys,value,key_in_message", [
    (["model", "varaint"], "ce", "model.varaint"),
    (["surprise"], 1, "surprise"),
    (["model", "variant"], "transformer", "model.variant"),
    (["data", "experts", "scene", "dim"], 0, "data.experts.scene.dim"),
    (["data", "experts", "scene", "dim"], "big", "data.experts.scene.dim"),
    (["data", "experts", "scene", "temporal"], "max", "data.experts.scene.temporal"),
    (["data", "experts", "audio", "clusters"], KeyError, "data.experts.audio.clusters"),
    (["data", "experts", "scene", "clusters"], 4, "data.experts.scene.clusters"),
    (["data", "text", "dim"], KeyError, "data.text.dim"),
    (["model", "shared_dim"], -3, "model.shared_dim"),
    (["optim", "name"], "sgd", "optim.name"),
    (["optim", "lr"], 0, "optim.lr"),
    (["train", "batch_size"], 1, "train.batch_size"),
    (["teachtext"], {"teachers": []}, "teachtext.teachers"),
    (["data", "experts", "Bad-Name"], {"dim": 3}, "data.experts.Bad-Name"),
    (["model", "compat", "sequential_gating"], "yes", "model.compat.sequential_gating"),
    (["model", "compat", "unknown_switch"], True, "model.compat.unknown_switch"),
    (["model", "compat", "concat_order"], ["scene"], "model.compat.concat_order"),
])
def test_invalid_configs_name_file_and_key(tmp_path, keys, value, key_in_message):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(_broken(keys, value)))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    msg = str(info.value)
    assert isinstance(info.value, UserError)
    assert str(path) in msg and key_in_message in msg and "\n" not in msg


def test_file_level_errors(tmp_path):
    # a missing file and a YAML syntax error: tests/test_fault_bad_configs.py (through the CLI)
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_config(tmp_path / "a.yaml")
