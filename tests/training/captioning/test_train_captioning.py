"""Training through the harness: every phase runs and steps only its components; early stopping;
Ray Train with 2 workers follows the 1-worker trajectory, and a SIGKILLed worker resumes onto it."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from tests.training.captioning.fixtures import make_dataset, tiny_cfg
from tests.training.ray_helpers import ray_run
from videxperts.training.config import load_config
from videxperts.training.runner import LoopOptions, Reporter, fit
from videxperts.training.task import get_task


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """One torch thread; the unset critic checkpoint's warning is expected here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from videxperts.storage.reader import StoreReader
    from videxperts.training.splits import read_splits

    tmp = tmp_path_factory.mktemp("cap")
    data, url = make_dataset(tmp, videos=9)
    cfg = load_config(tiny_cfg(data))
    task = get_task("captioning")
    res = task.driver_resources(cfg, None, tmp)
    reader = StoreReader(url)
    splits = {k: task.load_split(reader, cfg, v, res) for k, v in read_splits(data).items() if v}
    return cfg, splits, url


def test_every_phase_steps_only_its_components(setup):
    cfg, splits, _ = setup
    task = get_task("captioning")
    torch.manual_seed(0)
    model = task.build_model(cfg)
    opt, _ = task.build_optimizer(model, cfg)
    step = task.step_module(model, cfg)
    batches = {}
    for epoch in (1, 2, 3):  # warm, worker, manager (W = 1)
        batches[epoch] = next(iter(task.epoch_batches(cfg, splits, {}, epoch, 0, 1)))
    groups = {"enc": model.agent.bm_enc, "worker_fus": model.agent.bm_worker_fus,
              "manager_fus": model.agent.bm_manager_fus, "manager": model.agent.manager,
              "worker": model.agent.worker_proj, "worker_value": model.worker_value,
              "manager_value": model.manager_value, "critic": model.agent.critic,
              "emb": model.agent.inputs.emb_C}
    expected = {1: {"enc", "worker_fus", "manager_fus", "manager", "worker", "worker_value", "manager_value"},
                2: {"enc", "worker_fus", "worker", "worker_value"},
                3: {"manager_fus", "manager", "manager_value"}}
    for epoch, batch in batches.items():
        before = {k: [p.detach().clone() for p in m.parameters()] for k, m in groups.items()}
        opt.zero_grad(set_to_none=True)
        out = step(batch)
        assert torch.isfinite(out["loss"]) and out["phase"].item() == epoch - 1
        out["loss"].backward()
        opt.step()
        changed = {k for k, m in groups.items()
                   if any(not torch.equal(a, b) for a, b in zip(before[k], m.parameters(), strict=True))}
        assert changed == expected[epoch], epoch
    assert bool(batches[3]["explore"]) and not bool(batches[2]["explore"]) and not bool(batches[1]["explore"])


def test_in_process_training_logs_phases_rewards_and_samples(setup):
    cfg, splits, _ = setup
    result = fit(cfg, splits, LoopOptions(), Reporter())
    hist = result["history"]
    assert [h["train/phase"] for h in hist] == [0.0, 1.0, 2.0]
    for key in ("train/cap_loss", "train/worker_value_loss", "train/manager_value_loss", "train/amplitude",
                "train/reward", "val/METEOR", "val/Bleu_3", "val/Bleu_4"):
        assert all(np.isfinite(h[key]) for h in hist), key
    assert hist[0]["train/amplitude"] == 0.0 and hist[1]["train/amplitude"] > 0
    assert len(result["arrays"]["sample_caption"]) == len(splits["test"])
    assert result["arrays"]["vocab"][:4].tolist() == ["<unk>", "<blank>", "<s>", "</s>"]


def test_early_stopping_counts_evaluations_without_improvement():
    task = get_task("captioning")
    cfg = load_config(tiny_cfg(train={"early_stop_after": 2}))
    rows = [{"epoch": e, "val/METEOR": m} for e, m in enumerate([1.0, 3.0, 2.0], 1)]
    assert not task.should_stop(cfg, rows)
    assert task.should_stop(cfg, [*rows, {"epoch": 4, "val/METEOR": 3.0}])  # a tie is no improvement


def test_two_ray_workers_agree_with_a_killed_and_resumed_single_worker(setup, tmp_path_factory):
    import ray  # noqa: F401 - Ray itself is started below

    cfg, splits, _ = setup
    if not ray.is_initialized():
        from videxperts.pipelines.train_job import init_ray

        init_ray(None, 2, quiet=True)  # the local, loopback-bound Ray the train command starts
    tmp = tmp_path_factory.mktemp("ray")
    marker = tmp / "crashed"
    one, one_state, _ = ray_run(cfg, splits, tmp, "one", 1, LoopOptions(crash_at_epoch=2, crash_marker=str(marker)), 1)
    # continued from an epoch checkpoint (epoch 2's, or epoch 1's if the kill beat the report's upload)
    assert marker.exists() and one["resumed_at"] in ([2], [3])
    two, two_state, _ = ray_run(cfg, splits, tmp, "two", 2)
    for a, b in zip(one["history"], two["history"], strict=True):
        for key in ("train/cap_loss", "train/worker_value_loss", "train/reward", "train/amplitude", "val/METEOR"):
            assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-6), (a["epoch"], key)
    # attention key biases have no true gradient (softmax ignores a per-query constant): Adam turns
    # float noise into lr-sized steps there, so they are compared loosely; every other weight tightly
    keys = one_state["model"].keys()
    tight = [k for k in keys if not k.endswith(".k.bias")]
    torch.testing.assert_close({k: one_state["model"][k] for k in tight}, {k: two_state["model"][k] for k in tight},
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(one_state["model"], two_state["model"], rtol=0, atol=1e-2)


def test_cli_train_caption_evaluate_report(setup, tmp_path_factory):
    """`videxperts train` (Ray, MLflow) -> `caption --run` (ActivityNet JSON) -> `evaluate --run` -> `report`."""
    import json
    import os

    import yaml
    from click.testing import CliRunner
    from mlflow.tracking import MlflowClient

    from videxperts.pipelines.cli import cli
    from videxperts.training import tracking

    cfg, _, store = setup
    root = tmp_path_factory.mktemp("cli")
    data = cfg.data.dataset
    raw = tiny_cfg()
    raw["train"]["epochs"] = 2
    (root / "tiny.yaml").write_text(yaml.safe_dump(raw))  # no data.dataset: --data fills it
    work = str(root / "work")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    res = CliRunner().invoke(cli, ["train", "--config", str(root / "tiny.yaml"), "--store", store, "--data", data,
                                   "--work-dir", work, "--experiment", "cap"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    client = MlflowClient(tracking.resolve_tracking_uri(work))
    exp = client.get_experiment_by_name("cap")
    child = next(r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get(tracking.KIND_TAG) == "seed")
    assert [m.value for m in client.get_metric_history(child.info.run_id, "train/phase")] == [0.0, 1.0]
    assert "test.METEOR" in child.data.metrics
    plots = {a.path for a in client.list_artifacts(child.info.run_id, "plots")}
    assert "plots/sample_captions.json" in plots
    assert "vocab.json" in {a.path for a in client.list_artifacts(child.info.run_id)}

    res = CliRunner().invoke(cli, ["caption", "--run", child.info.run_id, "--store", store, "--videos", "v000",
                                   "--window", "5", "--work-dir", work, "--json"])
    assert res.exit_code == 0, res.output
    sub = json.loads(res.stdout)
    assert sub["version"] == "VERSION 1.0" and list(sub["results"]) == ["v000"]
    stamps = [r["timestamp"] for r in sub["results"]["v000"]]
    assert stamps[0][0] == 0.0 and all(b[0] == a[1] for a, b in zip(stamps, stamps[1:], strict=False))
    assert all(isinstance(r["sentence"], str) for r in sub["results"]["v000"])

    res = CliRunner().invoke(cli, ["evaluate", "--run", child.info.run_id, "--store", store, "--data", data,
                                   "--work-dir", work, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["metrics"]["METEOR"] == pytest.approx(child.data.metrics["test.METEOR"], rel=1e-6)

    res = CliRunner().invoke(cli, ["report", "--experiment", "cap", "--work-dir", work])
    assert res.exit_code == 0, res.output
    assert "B@3" in res.output and "ROUGE-L" in res.output and "CIDEr" in res.output


@pytest.mark.parametrize("switch", ["manager_gamma_from_worker", "forced_boundary_inplace", "amplitude_grad",
                                    "value_loss_mean_all", "eos_negative_reward", "specials_in_hypothesis"])
def test_each_rl_compat_switch_changes_the_manager_step(setup, switch):
    """Both sides of every RL switch run; each changes what it should (same weights, same batch)."""
    cfg, splits, _ = setup
    task = get_task("captioning")
    on = load_config({**cfg.to_dict(), "model": {**cfg.to_dict()["model"],
                                                 "compat": {**cfg.to_dict()["model"]["compat"], switch: True}}})
    batch = next(iter(task.epoch_batches(cfg, splits, {}, 3, 0, 1)))  # a manager epoch
    outs = {}
    for name, c in (("off", cfg), ("on", on)):
        torch.manual_seed(0)
        model = task.build_model(c)
        with torch.no_grad():  # a critic that fires often (never, for the forced first boundary)
            model.agent.critic.out.bias.fill_(-10.0 if switch == "forced_boundary_inplace" else 2.0)
        out = task.step_module(model, c)(batch)
        out["loss"].backward()
        grad = model.agent.manager[1].weight.grad
        outs[name] = {**{k: float(v) for k, v in out.items()}, "grad": grad.clone() if grad is not None else None}
    off, on_ = outs["off"], outs["on"]
    if switch == "value_loss_mean_all":
        assert on_["manager_value_loss"] < off["manager_value_loss"] and on_["cap_loss"] == off["cap_loss"]
    elif switch == "amplitude_grad":
        assert on_["cap_loss"] == pytest.approx(off["cap_loss"], rel=1e-6)
        assert not torch.allclose(on_["grad"], off["grad"])
    else:
        assert (on_["cap_loss"], on_["manager_value_loss"], on_["reward"]) != \
            (off["cap_loss"], off["manager_value_loss"], off["reward"])
