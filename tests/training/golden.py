"""Golden results of tiny CE and TeachText runs: a refactor of the harness must not move them.

Float results are bit-identical only on one kind of machine: PyTorch dispatches its kernels by
the CPU's vector capability (``torch.backends.cpu.get_cpu_capability()``: AVX2, AVX512, ...),
and the libraries under it (oneDNN, the BLAS) pick code paths by CPU model as well, so an
AVX-512 AMD EPYC and an AVX-512 Xeon round differently. Each entry therefore holds one recording
per machine kind (``machine_key()``: capability and CPU model), compared exactly. On a machine
kind with no recording, a well-conditioned run (``portable=True``: CE, where machine kinds
differ by about 1e-7 relative) is compared to the other recordings with a tolerance; an
ill-conditioned one (TeachText: its denoising keeps captions by a rank threshold, so a 1e-7
difference in the teachers flips which captions train the student) only warns that it is not
checked here and how to record it. Recordings keyed by the capability alone (made before the
CPU model was part of the key) count as other machines' recordings.

``VIDEXPERTS_RECORD_GOLDEN=1 pytest tests/training/test_runner.py tests/training/retrieval/test_teachtext.py``
records this machine kind (do that only for a change that is meant to alter the numbers, on
every kind of machine the suite runs on, and say why in the commit).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path

GOLDEN_FILE = Path(__file__).with_name("golden_results.json")
RECORD_ENV = "VIDEXPERTS_RECORD_GOLDEN"
# Timings and memory vary by machine; everything else in a history row is a result.
_VOLATILE = ("train/epoch_time_s", "train/samples_per_s_worker", "train/peak_rss_mb", "train/peak_gpu_mb")
PORTABLE_RTOL, PORTABLE_ATOL = 1e-5, 1e-6


def cpu_capability() -> str:
    """The vector instruction set PyTorch's CPU kernels were dispatched for on this machine."""
    import torch

    return torch.backends.cpu.get_cpu_capability()


def cpu_model() -> str:
    """The CPU's model name as the OS reports it (Linux /proc/cpuinfo), else the platform's processor string."""
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    import platform

    return " ".join((platform.processor() or platform.machine() or "unknown CPU").split())


def machine_key() -> str:
    """The kind of machine whose recordings this one matches bit for bit: kernel capability and CPU model."""
    return f"{cpu_capability()} {cpu_model()}"


def golden_view(result: dict, parameters: int) -> dict:
    """The parts of a fit result that must stay bit-identical: losses, metrics, best epoch, size."""
    history = [{k: v for k, v in row.items() if k not in _VOLATILE} for row in result["history"]]
    return {"parameters": parameters, "best_epoch": result["best_epoch"], "history": history,
            "test": dict(result.get("test", {}))}


def differences(got: object, want: object, rtol: float = 0.0, atol: float = 0.0, path: str = "") -> list[str]:
    """Where ``got`` differs from ``want``: structure and non-floats exactly, floats within the tolerance."""
    if isinstance(want, dict) and isinstance(got, dict):
        if set(got) != set(want):
            return [f"{path}: keys {sorted(set(got) ^ set(want))} differ"]
        return [d for k in sorted(want) for d in differences(got[k], want[k], rtol, atol, f"{path}/{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: {len(got)} items, want {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True))
                for d in differences(g, w, rtol, atol, f"{path}[{i}]")]
    if isinstance(want, float) and isinstance(got, float | int):
        ok = got == want or math.isclose(got, want, rel_tol=rtol, abs_tol=atol)
        return [] if ok else [f"{path}: {got!r}, want {want!r}"]
    return [] if got == want else [f"{path}: {got!r}, want {want!r}"]


def check_golden(name: str, view: dict, portable: bool = True) -> None:
    """Compare ``view`` to the recording ``name`` for this machine kind (exact float equality), or record it."""
    view = json.loads(json.dumps(view))  # the same float round trip as the file
    recorded = json.loads(GOLDEN_FILE.read_text()) if GOLDEN_FILE.exists() else {}
    cap = machine_key()
    if os.environ.get(RECORD_ENV) == "1":
        recorded.setdefault(name, {})[cap] = view
        GOLDEN_FILE.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    entries = recorded.get(name)
    assert entries, f"no golden entry {name!r}: record it with {RECORD_ENV}=1"
    if cap in entries:
        diff = differences(view, entries[cap])
        assert not diff, f"{name} ({cap}): results moved from {GOLDEN_FILE.name}: " + "; ".join(diff[:5])
        return
    if not portable:
        warnings.warn(f"{name}: no golden results for this machine kind ({cap}) (recorded: {', '.join(sorted(entries))}); "
                      f"not checked here; record them with {RECORD_ENV}=1", stacklevel=2)
        return
    diffs = {other: differences(view, want, PORTABLE_RTOL, PORTABLE_ATOL) for other, want in entries.items()}
    assert any(not d for d in diffs.values()), (
        f"{name} ({cap}, compared within rtol {PORTABLE_RTOL} to the other machines' recordings): results moved: "
        + "; ".join(f"{other}: {'; '.join(d[:3])}" for other, d in diffs.items()))
