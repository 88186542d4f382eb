"""`videxperts store import`: npy/npz/HDF5 per video or stacked, CE release pickles, and hostile pickles refused."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import videxperts
from videxperts.errors import UserError
from videxperts.storage.import_arrays import import_features
from videxperts.storage.safe_pickle import UnsafePickleError, load_feature_pickle

EXE = str(Path(sys.executable).with_name("videxperts"))
RNG = np.random.default_rng(0)
FEATS = {"v1": RNG.standard_normal((3, 4)).astype(np.float32), "v2": RNG.standard_normal(4).astype(np.float32),
         "v3": np.full(4, np.nan, np.float32)}  # CE's "this video lacks the expert"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, "store", "import", *args], capture_output=True, text=True, timeout=120)  # noqa: S603


def _check(url: str, expert: str = "rgb") -> None:
    view = videxperts.open_store(url)
    feats, mask = view.features(expert, ["v1", "v2", "v3"])
    np.testing.assert_allclose(feats[0][mask[0]], FEATS["v1"], rtol=1e-6)
    np.testing.assert_allclose(feats[1][mask[1]], FEATS["v2"][None], rtol=1e-6)
    assert mask.sum(axis=1).tolist() == [3, 1, 0]
    assert view.provenance(expert)["provenance"]["weights"].startswith("imported:sha256:")


def test_ce_release_pickle_through_the_entry_point(tmp_path: Path) -> None:
    src = tmp_path / "senet154-avg.pickle"
    src.write_bytes(pickle.dumps(FEATS, protocol=4))
    res = _run(str(tmp_path / "s.zarr"), str(src), "--expert", "rgb", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) | {"weights": None} == {"store": str(tmp_path / "s.zarr"), "expert": "rgb", "dim": 4,
                                                          "videos": 3, "rows": 4, "missing": 1, "weights": None}
    _check(str(tmp_path / "s.zarr"))
    src5 = tmp_path / "p5.pkl"
    src5.write_bytes(pickle.dumps({k: list(np.atleast_2d(v)) for k, v in FEATS.items()}, protocol=5))
    assert load_feature_pickle(src5)["v1"][0].shape == (4,)


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204 - the classic payload: run a command at load time
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickles_are_refused_before_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"v1": _Evil(marker)}))
    res = _run(str(tmp_path / "s.zarr"), str(evil), "--expert", "rgb")
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert "refused to unpickle (forbidden global posix.system)" in lines[0] and str(evil) in lines[0]
    assert not marker.exists() and not (tmp_path / "s.zarr").exists()
    objs = tmp_path / "objects.pkl"
    objs.write_bytes(pickle.dumps({"v1": np.array([{"a": 1}], dtype=object)}))
    with pytest.raises(UnsafePickleError, match="array of dtype object"):
        load_feature_pickle(objs)
    cls = tmp_path / "cls.pkl"
    cls.write_bytes(pickle.dumps({"v1": Path("/etc/passwd")}))
    with pytest.raises(UnsafePickleError, match="forbidden global pathlib"):
        load_feature_pickle(cls)


def test_npy_folder_npz_and_hdf5_per_video_and_stacked(tmp_path: Path) -> None:
    folder = tmp_path / "npy"
    folder.mkdir()
    for vid, x in FEATS.items():
        np.save(folder / f"{vid}.npy", x)
    import_features(str(tmp_path / "a.zarr"), "rgb", folder)
    _check(str(tmp_path / "a.zarr"))

    np.savez(tmp_path / "per.npz", **FEATS)
    import_features(str(tmp_path / "b.zarr"), "rgb", tmp_path / "per.npz")
    _check(str(tmp_path / "b.zarr"))

    stacked = np.stack([np.pad(FEATS["v1"][:1], ((0, 0), (0, 0)))[0], FEATS["v2"], FEATS["v3"]])  # [N, D]
    np.savez(tmp_path / "stk.npz", features=stacked, ids=np.array(["v1", "v2", "v3"]))
    out = import_features(str(tmp_path / "c.zarr"), "rgb", tmp_path / "stk.npz")
    assert (out["videos"], out["rows"], out["missing"]) == (3, 2, 1)

    with h5py.File(tmp_path / "per.h5", "w") as f:
        for vid, x in FEATS.items():
            f[vid] = x
    import_features(str(tmp_path / "d.zarr"), "rgb", tmp_path / "per.h5")
    _check(str(tmp_path / "d.zarr"))
    with h5py.File(tmp_path / "stk.h5", "w") as f:
        f["features"] = stacked
    (tmp_path / "ids.txt").write_text("v1\nv2\nv3\n")
    out = import_features(str(tmp_path / "e.zarr"), "rgb", tmp_path / "stk.h5", ids_file=str(tmp_path / "ids.txt"))
    assert (out["videos"], out["missing"]) == (3, 1)
    np.testing.assert_allclose(videxperts.open_store(str(tmp_path / "e.zarr")).features("rgb", ["v1"], mode="mean")[0],
                               FEATS["v1"][:1], rtol=1e-6)

    np.save(tmp_path / "stk.npy", stacked)
    with pytest.raises(UserError, match="a stacked array needs the video ids"):
        import_features(str(tmp_path / "f.zarr"), "rgb", tmp_path / "stk.npy")
    (tmp_path / "two.txt").write_text("v1\nv2\n")
    with pytest.raises(UserError, match="3 rows of features but 2 video ids"):
        import_features(str(tmp_path / "f.zarr"), "rgb", tmp_path / "stk.npy", ids_file=str(tmp_path / "two.txt"))
