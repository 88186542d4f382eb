"""Weights for expert backbones: seeded random init, local checkpoints, or cached URL downloads.

Every expert calls :func:`init_or_load` once in ``load()``; the string it returns is the
weights identity that the feature store records as provenance (``"sha256:<hex>"`` of the
checkpoint file, or ``"random-init:seed=<n>"``), so features made with different weights can
never be mixed silently.

Random initialisation is deterministic across processes and machines: every parameter is
drawn from a CPU ``torch.Generator`` seeded with ``seed`` in module order, independent of the
global RNG state and of the device the module lives on.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import torch
from torch import nn

from videxperts.errors import UserError

DEFAULT_CACHE = "~/.cache/videxperts/weights"
_WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "module")
_CHUNK = 1 << 20


class WeightsError(UserError):
    """A checkpoint that cannot be found, downloaded, verified or loaded into the model."""


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir_default() -> Path:
    """``$VIDEXPERTS_CACHE`` if set, else ``~/.cache/videxperts/weights``."""
    return Path(os.environ.get("VIDEXPERTS_CACHE") or DEFAULT_CACHE).expanduser()


def is_url(weights: str) -> bool:
    return urllib.parse.urlparse(weights).scheme in ("http", "https")


# ----------------------------------------------------------------------------- random init
@torch.no_grad()
def seeded_init(module: nn.Module, seed: int = 0) -> None:
    """Deterministically re-initialise every parameter and buffer of ``module``.

    Convolutions and linear layers get He-normal (fan-in, ReLU) weights and zero biases, which
    keeps activation scale roughly constant through deep random networks (the default
    PyTorch init shrinks it layer by layer, which starves random-feature experts). Norm layers
    are reset to identity with fresh running statistics. Anything else with
    ``reset_parameters`` is reset under a forked, seeded global RNG.
    """
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    convs = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
    norms = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)
    for sub in module.modules():
        if isinstance(sub, convs):
            w = torch.empty(sub.weight.shape, dtype=torch.float32)
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=gen)
            sub.weight.copy_(w)
            if sub.bias is not None:
                sub.bias.zero_()
        elif isinstance(sub, norms):
            sub.reset_parameters()
        elif hasattr(sub, "reset_parameters") and any(True for _ in sub.parameters(recurse=False)):
            sub_seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(sub_seed)
                sub.reset_parameters()


# ----------------------------------------------------------------------------- state dicts
def unwrap_state_dict(obj: object, source: str = "checkpoint") -> dict[str, torch.Tensor]:
    """Find the tensor dict inside common checkpoint wrappers and strip ``module.`` prefixes."""
    for _ in range(3):  # wrappers nest at most a couple of levels in practice
        if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
            inner = next((obj[k] for k in _WRAPPER_KEYS if isinstance(obj.get(k), Mapping)), None)
            if inner is None:
                break
            obj = inner
    if not isinstance(obj, Mapping):
        raise WeightsError(f"{source}: not a state_dict (got {type(obj).__name__})")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise WeightsError(f"{source}: no tensors found in the checkpoint")
    for prefix in ("module.", "model."):
        if all(k.startswith(prefix) for k in tensors):
            tensors = {k[len(prefix):]: v for k, v in tensors.items()}
    return tensors


def _is_tensor_dict(obj: Mapping) -> bool:
    return bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _load_into(module: nn.Module, state: dict[str, torch.Tensor], source: str, strict: bool) -> None:
    own = module.state_dict()
    shape_errors = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and tuple(own[k].shape) != tuple(v.shape)
    ]
    if shape_errors:
        raise WeightsError(f"{source}: shape mismatch for {len(shape_errors)} keys: " + "; ".join(shape_errors[:5]))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    if strict and (missing or unexpected):
        raise WeightsError(
            f"{source}: checkpoint does not match {type(module).__name__}: "
            f"{len(missing)} missing keys {_head(missing)}, {len(unexpected)} unexpected keys {_head(unexpected)}"
        )
    module.load_state_dict(state, strict=False)


def _head(keys: list[str], n: int = 8) -> str:
    return "[" + ", ".join(keys[:n]) + (", ..." if len(keys) > n else "") + "]"


# ----------------------------------------------------------------------------- downloads
def fetch_url(url: str, *, sha256: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
              timeout: float = 60.0) -> Path:
    """Return the cached file for ``url``, downloading it first (atomic rename) if absent.

    The cache name is the URL's basename, prefixed by the first 12 hex digits of ``sha256``
    when one is given, so two checkpoints with the same name never collide. A cached file that
    fails verification is an error, never silently replaced.
    """
    cache = Path(cache_dir).expanduser() if cache_dir else cache_dir_default()
    name = Path(urllib.parse.urlparse(url).path).name or "weights.pt"
    if sha256:
        name = f"{sha256[:12]}-{name}"
    target = cache / name
    if target.exists():
        _verify(target, sha256, url)
        return target
    cache.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=cache)
    try:
        h = hashlib.sha256()
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310
            for chunk in iter(lambda: resp.read(_CHUNK), b""):
                h.update(chunk)
                out.write(chunk)
        if sha256 and h.hexdigest() != sha256.lower():
            raise WeightsError(f"{url}: downloaded file has sha256 {h.hexdigest()}, expected {sha256}")
        os.replace(tmp, target)
    except urllib.error.HTTPError as e:
        raise WeightsError(f"{url}: cannot download weights (HTTP {e.code} {e.reason})") from e
    except (urllib.error.URLError, OSError, TimeoutError) as e:
        raise WeightsError(
            f"{url}: cannot download weights ({getattr(e, 'reason', e)}); "
            f"place the file at {target} to use it offline"
        ) from e
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _verify(path: Path, sha256: str | None, source: str) -> str:
    digest = file_sha256(path)
    if sha256 and digest != sha256.lower():
        raise WeightsError(f"{source}: sha256 mismatch for {path}: file has {digest}, expected {sha256}")
    return digest


# ----------------------------------------------------------------------------- public API
def init_or_load(
    module: nn.Module,
    weights: str | None,
    *,
    seed: int = 0,
    sha256: str | None = None,
    cache_dir: str | None = None,
    key_map: Callable[[dict], dict] | None = None,
    strict: bool = True,
) -> str:
    """Initialise ``module`` in place and return its weights identity for provenance.

    ``weights=None`` → seeded random init, ``"random-init:seed=<n>"``. A local path or an
    http(s) URL (downloaded once into the cache) → the checkpoint's tensors, after unwrapping
    common wrappers and applying ``key_map`` (for converted published checkpoints), are loaded
    with ``strict`` key checking → ``"sha256:<hex>"`` of the file.
    """
    if weights is None or str(weights).strip() == "":
        seeded_init(module, seed)
        return f"random-init:seed={int(seed)}"
    weights = str(weights)
    if is_url(weights):
        path = fetch_url(weights, sha256=sha256, cache_dir=cache_dir)
    else:
        path = Path(weights).expanduser()
        if not path.is_file():
            raise WeightsError(f"{weights}: weights file not found")
    digest = _verify(path, sha256, weights)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle errors, truncated zip, non-tensor payloads
        raise WeightsError(f"{weights}: cannot read checkpoint ({type(e).__name__}: {e})") from e
    state = unwrap_state_dict(obj, weights)
    if key_map is not None:
        state = dict(key_map(state))
    _load_into(module, state, weights, strict)
    return f"sha256:{digest}"


def save_checkpoint(module: nn.Module, path: str | os.PathLike[str]) -> str:
    """Save ``module.state_dict()`` (CPU tensors) atomically; return ``"sha256:<hex>"`` of the file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(state, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return f"sha256:{file_sha256(path)}"
