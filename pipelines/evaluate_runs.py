"""``evaluate --run`` on any run a user may paste: a seed run (its best model), or a training
parent run (every seed, then mean (std) as the report gives), checked before anything is downloaded.
"""

from __future__ import annotations

from typing import Any

from videxperts.errors import UserError

RUN_ID_HELP = ("a run id is the 32-hex-digit id MLflow shows on a run's page (or `videxperts train` prints as "
               "'parent run ...' / 'seed N: run ...')")


def seed_runs(run_id: str, tracking_uri: str) -> list[tuple[str, str]]:
    """``[(seed, run id)]`` to evaluate for ``run_id``: itself for a seed run, its children for a parent."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from videxperts.training.tracking import KIND_TAG, PARENT_TAG, SEED_TAG

    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException:
        raise UserError(f"--run {run_id!r}: no such run in {tracking_uri}; {RUN_ID_HELP}") from None
    kind = run.data.tags.get(KIND_TAG)
    if kind == "seed":
        return [(run.data.tags.get(SEED_TAG, "?"), run_id)]
    if kind == "train":
        children = client.search_runs([run.info.experiment_id],
                                      filter_string=f"tags.`{PARENT_TAG}` = '{run_id}'", max_results=1000)
        done = [c for c in children if c.info.status == "FINISHED"]
        if not done:
            raise UserError(f"--run {run_id}: training run {run.info.run_name!r} has no finished seed runs")
        return sorted(((c.data.tags.get(SEED_TAG, "?"), c.info.run_id) for c in done),
                      key=lambda t: (len(t[0]), t[0]))
    raise UserError(f"--run {run_id}: run {run.info.run_name!r} is a {kind or 'non-videxperts'} run, not a training "
                    f"run; give a training run (its seeds are evaluated) or one seed run; {RUN_ID_HELP}")


def aggregate(outs: list[dict[str, Any]]) -> dict[str, Any]:
    """mean (std) of every metric over seeds (population std, as the training parent run logs them)."""
    from videxperts.training.tracking import mean_std

    agg = mean_std([o["metrics"] for o in outs])
    keys = sorted({k.rsplit("_", 1)[0] for k in agg})
    return {k: {"mean": agg[f"{k}_mean"], "std": agg[f"{k}_std"]} for k in keys}
