"""What ``videxperts train`` checks before it touches MLflow or Ray: config, store, splits.

A config that names an expert the store does not hold, or a dim other than the store's,
would otherwise fail minutes later inside a Ray Train worker with a shape error. Each check
raises one :class:`~pipelines.errors.UserError` naming the input at fault: the config file
and its dotted key, the store, or the data dir.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipelines.errors import UserError, first_line


def open_store(url: str) -> Any:
    """The store at ``url`` opened read-only, or one line saying why not."""
    from storage.store import FeatureStore

    if "://" not in str(url) and not Path(url).exists():
        raise UserError(f"feature store not found: {url}")
    try:
        return FeatureStore.open(str(url), mode="r")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any opening problem is one line naming the store
        raise UserError(f"cannot open feature store {url}: {first_line(exc)}") from None


def check_config_matches_store(cfg: Any, store: Any, source: str, url: str) -> None:
    """Every expert and the text encoder of ``cfg`` are in ``store`` with the config's dims."""
    have = store.experts
    for name, spec in cfg.data.experts.items():
        if name not in have:
            raise UserError(f"{source}: data.experts.{name}: store {url} has no features for this expert "
                            f"(it has: {', '.join(sorted(have)) or 'none'})")
        if int(have[name]["dim"]) != int(spec.dim):
            raise UserError(f"{source}: data.experts.{name}.dim is {spec.dim} but store {url} holds "
                            f"{have[name]['dim']}-dim features for {name!r}")
    text, encoders = cfg.data.text, store.text_encoders
    if text.encoder not in encoders:
        raise UserError(f"{source}: data.text.encoder: store {url} has no captions encoded with {text.encoder!r} "
                        f"(it has: {', '.join(sorted(encoders)) or 'none'})")
    if int(encoders[text.encoder]["dim"]) != int(text.dim):
        raise UserError(f"{source}: data.text.dim is {text.dim} but store {url} holds "
                        f"{encoders[text.encoder]['dim']}-dim {text.encoder!r} tokens")
