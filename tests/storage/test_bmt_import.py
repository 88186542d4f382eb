"""`store import-bmt`: the published BMT feature layout into a store (i3d = rgb + flow, audio)."""

from __future__ import annotations

import json
import pickle

import numpy as np
from click.testing import CliRunner

from videxperts.pipelines.cli import cli
from videxperts.storage.view import StoreView


def test_import_bmt_layout(tmp_path):
    i3d, vgg = tmp_path / "i3d_25fps_stack64step64_2stream_npy", tmp_path / "vggish_npy"
    i3d.mkdir()
    vgg.mkdir()
    rng = np.random.default_rng(0)
    rgb = {v: rng.random((t, 1024), dtype=np.float32) for v, t in (("v_a", 14), ("v_b", 3))}
    flow = {v: rng.random(x.shape, dtype=np.float32) for v, x in rgb.items()}
    aud = {"v_a": rng.random((36, 128), dtype=np.float32), "v_c": rng.random((5, 128), dtype=np.float32)}
    for v in rgb:
        np.save(i3d / f"{v}_rgb.npy", rgb[v])
        np.save(i3d / f"{v}_flow.npy", flow[v])
    for v, x in aud.items():
        np.save(vgg / f"{v}.npy", x)
    np.save(i3d / "v_c_rgb.npy", np.zeros((4, 1024), np.float32))  # flow missing
    np.save(i3d / "v_d_rgb.npy", np.zeros((4, 512), np.float32))  # wrong dim
    np.save(i3d / "v_d_flow.npy", np.zeros((4, 512), np.float32))
    (vgg / "v_d.npy").write_bytes(pickle.dumps({"not": "an array"}))  # never unpickled

    url = str(tmp_path / "store.zarr")
    res = CliRunner().invoke(cli, ["store", "import-bmt", url, "--i3d", str(i3d), "--vggish", str(vgg), "--json"],
                             catch_exceptions=False)  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["videos"] == 4 and out["done"] == {"i3d": 2, "audio": 2} and out["failed"] == {"i3d": 2, "audio": 2}
    assert any("v_c: missing file v_c_flow.npy" in f for f in out["failures"]["i3d"])
    assert any("v_d_rgb.npy: expected [T, 1024], got [4, 512]" in f for f in out["failures"]["i3d"])
    assert any(f.startswith("v_d: v_d.npy: not a readable .npy array") for f in out["failures"]["audio"])

    view = StoreView.open(url)
    feats, mask = view.features("i3d", ["v_a", "v_b"], mode="seq")
    np.testing.assert_allclose(feats[0, :14], rgb["v_a"] + flow["v_a"], rtol=1e-6)  # the streams summed
    np.testing.assert_allclose(feats[1, :3], rgb["v_b"] + flow["v_b"], rtol=1e-6)
    assert mask.sum(1).tolist() == [14, 3]
    ts = view.timestamps("i3d", ["v_a"])
    np.testing.assert_allclose(ts[0, :3], [0.0, 2.56, 5.12], rtol=1e-6)
    a, amask = view.features("audio", ["v_a", "v_c"], mode="seq")
    np.testing.assert_allclose(a[0, :36], aud["v_a"])
    np.testing.assert_allclose(view.timestamps("audio", ["v_a"])[0, :2], [0.0, 0.96], rtol=1e-6)
    prov = view.provenance("i3d")["provenance"]
    assert prov["streams"] == "sum" and prov["weights"] == "imported:bmt-release" and prov["sampling"]["clip_stride"] == 64
    # re-running is idempotent for the same files (same provenance, same identity)
    res = CliRunner().invoke(cli, ["store", "import-bmt", url, "--vggish", str(vgg)], catch_exceptions=False)
    assert res.exit_code == 0 and "imported 3 videos" in res.output and "audio: 2 done, 1 failed" in res.output


def test_import_bmt_needs_a_folder(tmp_path):
    res = CliRunner().invoke(cli, ["store", "import-bmt", str(tmp_path / "s.zarr")])
    assert res.exit_code != 0 and "give --i3d DIR" in res.output + str(res.exception)
