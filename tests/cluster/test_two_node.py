"""A real two-node Ray cluster on this machine (two raylets, two object stores) runs one extraction.

Both nodes must do work: the summary records the node id of every decode and expert call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipelines.extract_helpers import extract_cmd, make_dataset, ray_cluster, run_extract_cli

pytestmark = pytest.mark.slow


def test_extraction_spreads_over_two_nodes(tmp_path: Path) -> None:
    from videxperts.storage.store import FeatureStore

    data = make_dataset(tmp_path / "data", 4, seconds=1.0)
    with ray_cluster(tmp_path / "ray", head_cpus=1, worker_cpus=1, head_resources={"node_a": 1},
                     worker_resources={"node_b": 1}) as head:
        store = tmp_path / "store.zarr"
        s = run_extract_cli(extract_cmd(data, store, head["gcs_address"], "--experts", "audio", "--workers", "2",
                                        "--no-tracking", "--no-captions"), head)
    assert s["cluster"]["nodes"] == 2 and s["cluster"]["num_cpus"] == 2
    assert (s["done"], s["failed"]) == (4, 0)
    assert len(s["node_ids"]) == 2, s["nodes"]  # both nodes did work
    worked = set(s["nodes"]["decode"]) | set(s["nodes"]["audio"])
    assert worked == set(s["node_ids"])
    fs = FeatureStore.open(str(store), mode="r")
    assert fs.info()["experts"]["audio"]["done"] == 4 and fs.verify() == []
