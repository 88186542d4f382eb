"""The golden-result comparison: exact per machine kind, a tolerance across machine kinds."""

from __future__ import annotations

import json

import pytest

from tests.training import golden


def test_recordings_of_portable_runs_agree_across_capabilities_within_the_tolerance():
    recorded = json.loads(golden.GOLDEN_FILE.read_text())
    for name in ("ce_1worker", "ce_2workers"):
        caps = sorted(recorded[name])
        assert len(caps) >= 2, name
        ref = recorded[name][caps[0]]
        for cap in caps[1:]:
            assert golden.differences(recorded[name][cap], ref) != [], "recordings are meant to differ in bits"
            assert golden.differences(recorded[name][cap], ref, golden.PORTABLE_RTOL, golden.PORTABLE_ATOL) == []


@pytest.fixture
def golden_file(tmp_path, monkeypatch):
    path = tmp_path / "golden.json"
    view = {"parameters": 5, "best_epoch": 2, "history": [{"epoch": 1, "train/loss": 0.5}], "test": {"R1": 50.0}}
    path.write_text(json.dumps({"run": {"AVX2 Intel(R) Xeon(R) CPU": view}}))
    monkeypatch.setattr(golden, "GOLDEN_FILE", path)
    return view


def _moved(view: dict, loss: float) -> dict:
    return {**view, "history": [{"epoch": 1, "train/loss": loss}]}


def test_same_machine_kind_is_exact(golden_file, monkeypatch):
    monkeypatch.setattr(golden, "machine_key", lambda: "AVX2 Intel(R) Xeon(R) CPU")
    golden.check_golden("run", golden_file)
    with pytest.raises(AssertionError, match=r"run \(AVX2 Intel\(R\) Xeon\(R\) CPU\): results moved.*train/loss"):
        golden.check_golden("run", _moved(golden_file, 0.5 * (1 + 1e-9)))


def test_other_machine_kind_portable_within_tolerance_else_a_warning(golden_file, monkeypatch):
    """The same capability on another CPU model is another machine kind (AVX-512 EPYC vs Xeon round differently)."""
    monkeypatch.setattr(golden, "machine_key", lambda: "AVX2 AMD EPYC")
    golden.check_golden("run", _moved(golden_file, 0.5 * (1 + 1e-7)))
    with pytest.raises(AssertionError, match="within rtol"):
        golden.check_golden("run", _moved(golden_file, 0.5 * (1 + 1e-3)))
    with pytest.raises(AssertionError, match="keys"):
        golden.check_golden("run", {**golden_file, "test": {"R5": 50.0}})
    with pytest.warns(UserWarning, match=r"no golden results for this machine kind \(AVX2 AMD EPYC\)"):
        golden.check_golden("run", _moved(golden_file, 0.7), portable=False)


def test_machine_key_names_the_capability_and_the_cpu_model():
    key = golden.machine_key()
    assert key.startswith(golden.cpu_capability() + " ")
    assert golden.cpu_model() and key.endswith(golden.cpu_model())
