"""Every task's best model becomes an MLflow PyTorch model that loads back with the same weights,
including DCPG's weight-normed (parametrized) layers, which torch will not pickle as they are."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from tests.training.test_example_batch import CONFIGS
from videxperts.pipelines.train_context import MODEL_ARTIFACT_DIR, log_pytorch_model
from videxperts.training.checkpoint import save_model_checkpoint
from videxperts.training.task import task_of


@pytest.mark.parametrize("name", ["tiny_dcpg", "tiny_vsrn", "tiny_bmhrl", "demo_ce"])
def test_best_model_is_logged_and_loads_back(name: str, tmp_path, capsys) -> None:
    import mlflow.pytorch

    cfg = CONFIGS[name]()
    torch.manual_seed(0)
    model = task_of(cfg).build_model(cfg).eval()
    ckpt = save_model_checkpoint(tmp_path / "model.pt", cfg, {"model": model.state_dict(), "best_epoch": 1})
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment("m", artifact_location=str(tmp_path / "art"))).info.run_id
    log_pytorch_model(client, run, ckpt)
    assert "warning" not in capsys.readouterr().err
    mlflow.set_tracking_uri(uri)
    loaded = mlflow.pytorch.load_model(f"runs:/{run}/{MODEL_ARTIFACT_DIR}")
    # every weight the trained module computes (weight-normed ones included) is what the logged one holds
    mine = dict(model.named_modules())
    for path, module in loaded.named_modules():
        for pname, value in module.named_parameters(recurse=False):
            expected = getattr(mine[path], pname)
            torch.testing.assert_close(value.detach(), expected.detach(), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in loaded.parameters()) > 0
