"""What ``videxperts train`` checks before it touches MLflow or Ray: config, store, splits.

A config that names an expert the store does not hold, or a dim other than the store's,
would otherwise fail minutes later inside a Ray Train worker with a shape error. Each check
raises one :class:`~videxperts.errors.UserError` naming the input at fault: the config file
and its dotted key, the store, or the data dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from videxperts.errors import UserError, first_line


def open_store(url: str) -> Any:
    """The store at ``url`` opened read-only, or one line saying why not."""
    from videxperts.storage.store import FeatureStore

    if "://" not in str(url) and not Path(url).exists():
        raise UserError(f"feature store not found: {url}")
    try:
        return FeatureStore.open(str(url), mode="r")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any opening problem is one line naming the store
        raise UserError(f"cannot open feature store {url}: {first_line(exc)}") from None


def check_config_matches_store(cfg: Any, store: Any, source: str, url: str) -> None:
    """The config's task checks that ``store`` can feed it (experts, dims, text encoders, ...)."""
    from videxperts.training.task import task_of

    task_of(cfg).check_store(cfg, store, source, url)
