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


# The published CE configs name things as the released features do; the extraction profiles
# name what videxperts extracts. docs/EXPERTS.md "Published configs and the profiles" has the table.
_ENCODER_NAMES = {"gpt": "gpt2", "word2vec": "wordvec"}
_NO_EXTRACTOR = {"rgb": "SENet-154 ImageNet features; videxperts has no extractor for them"}
_WORD_EXPERTS = {"ocr", "speech"}


def mismatch_hint(kind: str, name: str, want: int | None = None, held: int | None = None) -> str:
    """A parenthesised hint for a config/store mismatch caused by published vs extracted naming, or ''."""
    if kind == "encoder" and name in _ENCODER_NAMES:
        return (f" (the published {name!r} text features are called {_ENCODER_NAMES[name]!r} by the extraction "
                f"profiles: --set data.text.encoder={_ENCODER_NAMES[name]}, or `store import` the published ones)")
    if kind == "expert" and name in _NO_EXTRACTOR:
        return f" ({_NO_EXTRACTOR[name]}: `store import` the published features, or drop {name} from the config)"
    if kind == "dim" and name in _WORD_EXPERTS and want == 300:
        return (f" (300 is the published word2vec words; the profiles embed {name} words with "
                f"minilm: --set data.experts.{name}.dim={held}, or `store import` the published features)")
    return ""
