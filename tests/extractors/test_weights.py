"""videxperts.extractors.weights: seeded init, checkpoint loading, verification, URL cache, offline errors."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from videxperts.errors import UserError
from videxperts.extractors.weights import WeightsError, init_or_load, save_checkpoint, unwrap_state_dict

REPO = Path(__file__).resolve().parents[2]


def tiny() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


def state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def digest(m: nn.Module) -> str:
    h = hashlib.sha256()
    for k, v in m.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_random_init_is_seeded_and_independent_of_global_rng():
    a, b, c = tiny(), tiny(), tiny()
    assert init_or_load(a, None, seed=7) == "random-init:seed=7"
    torch.manual_seed(12345)  # global RNG state must not matter
    torch.rand(100)
    init_or_load(b, None, seed=7)
    init_or_load(c, None, seed=8)
    assert state_equal(a, b)
    assert not torch.equal(a[0].weight, c[0].weight)
    assert a[0].bias.abs().sum() == 0 and torch.equal(a[1].running_var, torch.ones(4))


def test_random_init_is_identical_in_another_process():
    code = (
        "import hashlib, torch; from torch import nn; from videxperts.extractors.weights import init_or_load\n"
        "m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4*6*6, 5))\n"
        "init_or_load(m, None, seed=7); h = hashlib.sha256()\n"
        "for k, v in m.state_dict().items(): h.update(k.encode()); h.update(v.contiguous().numpy().tobytes())\n"
        "print(h.hexdigest())"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    m = tiny()
    init_or_load(m, None, seed=7)
    assert out.stdout.strip() == digest(m)


def test_checkpoint_round_trip_and_identity(tmp_path):
    src = tiny()
    init_or_load(src, None, seed=3)
    path = tmp_path / "ck.pt"
    ident = save_checkpoint(src, path)
    assert ident == f"sha256:{sha(path)}"
    dst = tiny()
    init_or_load(dst, None, seed=99)
    assert init_or_load(dst, str(path)) == ident
    assert state_equal(src, dst)
    # verified against an expected checksum
    assert init_or_load(tiny(), str(path), sha256=sha(path)) == ident
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        init_or_load(tiny(), str(path), sha256="0" * 64)


def test_wrapped_checkpoints_and_key_map(tmp_path):
    src = tiny()
    init_or_load(src, None, seed=1)
    wrapped = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in src.state_dict().items()}}
    path = tmp_path / "wrapped.pth"
    torch.save(wrapped, path)
    dst = tiny()
    init_or_load(dst, str(path))
    assert state_equal(src, dst)
    # a converted checkpoint with foreign names loads through key_map
    foreign = {k.replace("0.", "conv.", 1) if k.startswith("0.") else k: v for k, v in src.state_dict().items()}
    torch.save({"model": foreign}, path)
    with pytest.raises(WeightsError, match="missing keys"):
        init_or_load(tiny(), str(path))
    dst2 = tiny()
    init_or_load(dst2, str(path), key_map=lambda s: {k.replace("conv.", "0.", 1): v for k, v in s.items()})
    assert state_equal(src, dst2)


def test_unwrap_state_dict_rejects_non_tensor_payloads():
    assert list(unwrap_state_dict({"model": {"module.w": torch.ones(1)}})) == ["w"]
    with pytest.raises(WeightsError, match="no tensors"):
        unwrap_state_dict({"epoch": 1})


def test_strict_mismatch_names_keys(tmp_path):
    path = tmp_path / "other.pt"
    save_checkpoint(nn.Linear(3, 2), path)
    with pytest.raises(WeightsError) as e:
        init_or_load(tiny(), str(path))
    msg = str(e.value)
    assert str(path) in msg and "missing keys" in msg and "0.weight" in msg and "unexpected keys" in msg
    assert isinstance(e.value, UserError)
    # shape mismatch is reported with shapes
    save_checkpoint(nn.Sequential(nn.Conv2d(3, 8, 3)), path)
    with pytest.raises(WeightsError, match=r"0\.weight: checkpoint \(8, 3, 3, 3\)"):
        init_or_load(tiny(), str(path), strict=False)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        init_or_load(tiny(), str(tmp_path / "nope.pt"))
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="cannot read checkpoint"):
        init_or_load(tiny(), str(bad))


def test_url_offline_error_names_url(tmp_path):
    url = "http://127.0.0.1:9/models/ck.pt"  # discard port: connection refused, no network needed
    with pytest.raises(WeightsError) as e:
        init_or_load(tiny(), url, cache_dir=str(tmp_path))
    assert url in str(e.value) and "cannot download" in str(e.value)
    assert not list(tmp_path.iterdir())  # no partial file left behind


def test_url_cache_hit_without_network(tmp_path, monkeypatch):
    src = tiny()
    init_or_load(src, None, seed=5)
    monkeypatch.setenv("VIDEXPERTS_CACHE", str(tmp_path / "cache"))
    placed = tmp_path / "cache" / "ck.pt"
    ident = save_checkpoint(src, placed)
    dst = tiny()
    assert init_or_load(dst, "http://127.0.0.1:9/models/ck.pt") == ident  # default cache from the env var
    assert state_equal(src, dst)
    # with a checksum the cache name carries its prefix; a corrupted cached file is an error
    hexd = ident.split(":")[1]
    named = tmp_path / "c2" / f"{hexd[:12]}-ck.pt"
    save_checkpoint(src, named)
    assert init_or_load(tiny(), "https://example.invalid/ck.pt", sha256=hexd, cache_dir=str(tmp_path / "c2")) == ident
    named.write_bytes(named.read_bytes() + b"x")
    with pytest.raises(WeightsError, match="sha256 mismatch"):
        init_or_load(tiny(), "https://example.invalid/ck.pt", sha256=hexd, cache_dir=str(tmp_path / "c2"))


@pytest.fixture
def http_dir(tmp_path):
    """A local HTTP server (127.0.0.1, random port) serving ``tmp_path/srv``."""
    import functools
    import http.server
    import threading

    root = tmp_path / "srv"
    root.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args, **kwargs) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_url_download_verifies_and_caches(http_dir, tmp_path):
    root, base = http_dir
    src = tiny()
    init_or_load(src, None, seed=11)
    ident = save_checkpoint(src, root / "ck.pt")
    hexd = ident.split(":")[1]
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="expected " + "1" * 64):
        init_or_load(tiny(), f"{base}/ck.pt", sha256="1" * 64, cache_dir=str(cache))
    assert not [p for p in cache.iterdir()]  # nothing half-written or unverified is kept
    dst = tiny()
    assert init_or_load(dst, f"{base}/ck.pt", sha256=hexd, cache_dir=str(cache)) == ident
    assert state_equal(src, dst)
    assert [p.name for p in cache.iterdir()] == [f"{hexd[:12]}-ck.pt"]
    (root / "ck.pt").unlink()  # served no more: the cache answers
    assert init_or_load(tiny(), f"{base}/ck.pt", sha256=hexd, cache_dir=str(cache)) == ident
    with pytest.raises(WeightsError, match="HTTP 404"):
        init_or_load(tiny(), f"{base}/missing.pt", cache_dir=str(cache))
