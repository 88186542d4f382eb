"""The segment critic: rule-based boundary labels, its own training task (precision/recall), and the
checkpoint it writes loaded by the BMHRL agent."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from tests.training.captioning.fixtures import make_dataset, tiny_cfg
from videxperts.errors import UserError
from videxperts.training.captioning.critic import boundary_labels, load_critic
from videxperts.training.config import load_config
from videxperts.training.runner import LoopOptions, Reporter, fit
from videxperts.training.task import get_task


def test_rule_labels_mark_clause_ends():
    itos = ["<unk>", "<blank>", "<s>", "</s>", "a", "man", "runs", "then", "jumps", ",", "and", "falls"]
    ids = {w: i for i, w in enumerate(itos)}
    toks = [2] + [ids[w] for w in "a man runs then jumps , and falls".split()] + [3]
    labels = boundary_labels(toks, itos)
    inp = ["<s>", *"a man runs then jumps , and falls".split()]
    assert len(labels) == len(inp)
    assert [w for w, y in zip(inp, labels, strict=True) if y] == ["runs", "jumps", "falls"]


def test_critic_trains_and_the_agent_loads_its_checkpoint(tmp_path, one_torch_thread):
    from videxperts.storage.reader import StoreReader
    from videxperts.training.splits import read_splits

    data, url = make_dataset(tmp_path, videos=9)
    raw = tiny_cfg(data, task="segment_critic", model={"arch": "critic"}, optim={"lr": 0.03},
                   train={"epochs": 20, "batch_size": 8})
    cfg = load_config(raw)
    task = get_task("segment_critic")
    res = task.driver_resources(cfg, None, tmp_path)
    reader = StoreReader(url)
    splits = {k: task.load_split(reader, cfg, v, res) for k, v in read_splits(data).items() if v}
    reporter = Reporter(str(tmp_path / "ckpt"))
    result = fit(cfg, splits, LoopOptions(), reporter)
    first, last = result["history"][0], result["history"][-1]
    assert last["train/loss"] < first["train/loss"]
    assert result["test"]["F1"] > 80 and result["test"]["precision"] > 70 and result["test"]["recall"] > 70
    ckpt = reporter.last_checkpoint + "/state.pt"
    dims = tiny_cfg()["model"]["critic"]
    agent_cfg = load_config(tiny_cfg(data, model={"critic": {**dims, "checkpoint": ckpt}}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        system = get_task("captioning").build_model(agent_cfg)
    assert not [w for w in caught if "critic" in str(w.message)]  # no "checkpoint is not set" warning
    state = torch.load(ckpt, weights_only=True)["best_model"]
    assert torch.equal(system.agent.critic.out.weight, state["critic.out.weight"])
    bad = load_config(tiny_cfg(data, model={"critic": {**dims, "checkpoint": str(tmp_path / "none.pt")}}))
    with pytest.raises(UserError, match="model.critic.checkpoint"):
        load_critic(system.agent.critic, bad)
    required = load_config(tiny_cfg(data, model={"compat": {"critic_required": True}}))
    with pytest.raises(UserError, match="critic_required"):
        load_critic(system.agent.critic, required)


def test_missing_inputs_are_one_line_before_training(tmp_path):
    task = get_task("captioning")
    with pytest.raises(UserError, match="data.dataset: training needs the dataset directory"):
        task.check_resources(load_config(tiny_cfg()))
    data, _ = make_dataset(tmp_path, videos=3, store=False)
    with pytest.raises(UserError, match=r"model.critic.checkpoint: .*compat.critic_required"):
        task.check_resources(load_config(tiny_cfg(data, model={"compat": {"critic_required": True}})))
    with pytest.raises(UserError, match="no such file"):
        task.check_resources(load_config(tiny_cfg(data, model={"critic": {"checkpoint": "nope.pt"}})))
    with pytest.raises(UserError, match="no captions.parquet"):
        load_config(tiny_cfg(tmp_path / "empty"))
    with pytest.raises(UserError, match="model.arch"):
        load_config(tiny_cfg(model={"arch": "lstm"}))


def test_critic_by_run_id_and_checkpoints_load_without_the_critic_file(tmp_path):
    """A critic run's MLflow id resolves to its model.pt under the work dir; a BMHRL model.pt
    loads where that file no longer exists (its weights already hold the critic's)."""
    from mlflow.tracking import MlflowClient

    from videxperts.training.checkpoint import MODEL_ARTIFACT, load_model_checkpoint, save_model_checkpoint

    data, _ = make_dataset(tmp_path, videos=3, store=False)
    dims = tiny_cfg()["model"]["critic"]
    critic_cfg = load_config(tiny_cfg(data, task="segment_critic", model={"arch": "critic"}))
    torch.manual_seed(1)
    critic_model = get_task("segment_critic").build_model(critic_cfg)
    critic_pt = save_model_checkpoint(tmp_path / "critic" / "model.pt", critic_cfg,
                                      {"model": critic_model.state_dict()})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("c", artifact_location=str(tmp_path / "art"))).info.run_id
    client.log_artifact(run, str(critic_pt), MODEL_ARTIFACT.rsplit("/", 1)[0])

    task = get_task("captioning")
    by_id = load_config(tiny_cfg(data, model={"critic": {**dims, "checkpoint": run}}))
    task.check_resources(by_id)  # a run id is not "no such file"
    work = tmp_path / "work"
    resolved = task.resolve_references(by_id, uri, work)
    local = Path(resolved.model.critic.checkpoint)
    assert local.is_file() and local.is_relative_to(work / "critic" / run)
    system = task.build_model(resolved)
    assert torch.equal(system.agent.critic.out.weight, critic_model.critic.out.weight)
    with pytest.raises(UserError, match=r"model.critic.checkpoint: .*neither a file nor an MLflow run id"):
        task.resolve_references(load_config(tiny_cfg(data, model={"critic": {**dims, "checkpoint": "0" * 32}})),
                                uri, work)

    agent_pt = save_model_checkpoint(tmp_path / "agent.pt", resolved, {"model": system.state_dict()})
    local.unlink()  # e.g. evaluated on another machine
    _, loaded, _ = load_model_checkpoint(agent_pt)
    assert torch.equal(loaded.agent.critic.out.weight, critic_model.critic.out.weight)


def test_with_data_keeps_the_critic_task(tmp_path):
    """`train --config <critic> --data DIR` fills data.dataset without turning the config into an agent's."""
    data, _ = make_dataset(tmp_path, videos=3, store=False)
    task = get_task("segment_critic")
    cfg = load_config(tiny_cfg(task="segment_critic", model={"arch": "critic"}))
    filled = task.with_data(cfg, str(data))
    assert filled.task == "segment_critic" and filled.data.dataset == str(Path(data).resolve())


def test_init_checkpoint_starts_from_another_runs_weights(tmp_path):
    """The published BMHRL starts from a warm-started checkpoint: model.init_checkpoint (path or
    run id) loads every weight of a same-arch model.pt; another architecture or dims is one line."""
    from mlflow.tracking import MlflowClient

    from videxperts.training.checkpoint import MODEL_ARTIFACT, save_model_checkpoint

    data, _ = make_dataset(tmp_path, videos=3, store=False)
    task = get_task("captioning")
    warm_cfg = load_config(tiny_cfg(data))
    torch.manual_seed(3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = task.build_model(warm_cfg)
    warm_pt = save_model_checkpoint(tmp_path / "warm" / "model.pt", warm_cfg, {"model": warm.state_dict()})

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("w", artifact_location=str(tmp_path / "art"))).info.run_id
    client.log_artifact(run, str(warm_pt), MODEL_ARTIFACT.rsplit("/", 1)[0])
    by_id = load_config(tiny_cfg(data, model={"init_checkpoint": run}))
    task.check_resources(by_id)
    resolved = task.resolve_references(by_id, uri, tmp_path / "work")
    assert Path(resolved.model.init_checkpoint).is_relative_to(tmp_path / "work" / "init" / run)
    torch.manual_seed(4)  # another seed: only the checkpoint can make the weights equal
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        started = task.build_model(resolved)
    assert not [w for w in caught if "critic" in str(w.message)]  # the checkpoint holds the critic
    for (name, a), b in zip(warm.state_dict().items(), started.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not any(p.requires_grad for p in started.agent.critic.parameters())

    bmt = load_config(tiny_cfg(data, model={"arch": "bmt", "init_checkpoint": str(warm_pt)}))
    with pytest.raises(UserError, match="a bmhrl checkpoint cannot start a bmt model"):
        task.build_model(bmt)
    wider = load_config(tiny_cfg(data, model={"init_checkpoint": str(warm_pt), "d_model": 32}))
    with pytest.raises(UserError, match="model.init_checkpoint: .*does not fit this model"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            task.build_model(wider)
    with pytest.raises(UserError, match="model.init_checkpoint: nope.pt: no such file"):
        task.check_resources(load_config(tiny_cfg(data, model={"init_checkpoint": "nope.pt"})))


def test_unsafe_weight_files_are_one_line(tmp_path):
    """A critic or init file holding more than tensors is refused by the shared reader in one line."""
    from pathlib import PurePosixPath

    data, _ = make_dataset(tmp_path, videos=3, store=False)
    bad = tmp_path / "hostile.pt"
    torch.save({"payload": PurePosixPath("/etc/passwd")}, bad)  # a global outside weights_only's allowlist
    task = get_task("captioning")
    dims = tiny_cfg()["model"]["critic"]
    for over, key in (({"critic": {**dims, "checkpoint": str(bad)}}, "model.critic.checkpoint"),
                      ({"init_checkpoint": str(bad)}, "model.init_checkpoint")):
        with pytest.raises(UserError, match=rf"{key}: .*hostile.pt: not a videxperts checkpoint \(unsafe content"):
            task.build_model(load_config(tiny_cfg(data, model=over)))
