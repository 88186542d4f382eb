"""What ``videxperts doctor`` checks: the programs, libraries and places the commands need.

Each check returns a :class:`Check` (ok / warn / missing, whether it is required, one line of
detail and what to do). Nothing here creates anything: the tracking store is opened read-only
(or its folder checked for write access when it does not exist yet).
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import sqlite3
import subprocess
import urllib.parse
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from videxperts.errors import first_line

MIN_SHM_BYTES = 1 << 30  # Ray's object store lives in /dev/shm; below this it spills to disk (slow)


@dataclass
class Check:
    name: str
    status: str  # "ok", "warn" or "missing"
    required: bool
    detail: str
    fix: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _program(name: str, args: list[str], required: bool, used_for: str, fix: str) -> Check:
    exe = shutil.which(name)
    if exe is None:
        return Check(name, "missing", required, f"not on PATH (needed for {used_for})", fix)
    try:
        out = subprocess.run([exe, *args], capture_output=True, text=True, timeout=30, check=False)  # noqa: S603
        text = (out.stdout or out.stderr).strip().splitlines()
        version = text[0][:100] if text else f"exit code {out.returncode}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Check(name, "missing", required, f"{exe} does not run ({first_line(exc)})", fix)
    return Check(name, "ok", required, f"{exe}: {version}")


def check_programs() -> list[Check]:
    apt = "sudo apt-get install -y {} (or `make install`)"
    return [
        _program("ffmpeg", ["-version"], True, "decoding checks and `data synth`", apt.format("ffmpeg")),
        _program("ffprobe", ["-version"], True, "media probing", apt.format("ffmpeg")),
        _program("espeak-ng", ["--version"], True, "the spoken words of `data synth`", apt.format("espeak-ng")),
        _program("tesseract", ["--version"], True, "the ocr expert", apt.format("tesseract-ocr")),
        _program("java", ["-version"], True, "METEOR in captioning evaluation", apt.format("openjdk-17-jre-headless")),
    ]


def _version_of(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    try:
        mod = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - a broken install is a finding, not a crash
        return f"broken ({first_line(exc, 120)})"
    return str(getattr(mod, "__version__", "installed"))


def check_torch() -> list[Check]:
    version = _version_of("torch")
    if version is None or version.startswith("broken"):
        return [Check("torch", "missing", True, version or "not installed", "pip install torch (see constraints.txt)")]
    import torch

    checks = [Check("torch", "ok", True, f"torch {version}")]
    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        checks.append(Check("cuda", "ok", False, f"CUDA {torch.version.cuda}: {names}"))
    else:
        built = f"built with CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        checks.append(Check("cuda", "warn", False, f"no GPU visible (torch is {built}); --use-gpu and "
                            "device: cuda will not work, CPU runs will",
                            "a GPU and its driver" if torch.version.cuda else "a CUDA build of torch, a GPU and its driver"))
    return checks


def check_decoders() -> list[Check]:
    from videxperts.extractors.registry import DECODER_BACKENDS

    modules = {"decord": "decord", "torchcodec": "torchcodec", "pyav": "av"}
    found = {b: _version_of(modules[b]) for b in DECODER_BACKENDS}
    usable = [b for b, v in found.items() if v is not None and not v.startswith("broken")]
    detail = ", ".join(f"{b} {v or 'not installed'}" for b, v in found.items())
    if not usable:
        return [Check("decoders", "missing", True, detail, "pip install decord av (see constraints.txt)")]
    status = "ok" if "av" in [modules[b] for b in usable] else "warn"  # PyAV also reads the audio track
    return [Check("decoders", status, True, detail, "" if status == "ok" else "pip install av (audio is read with PyAV)")]


def check_ray() -> list[Check]:
    version = _version_of("ray")
    if version is None or version.startswith("broken"):
        return [Check("ray", "missing", True, version or "not installed", "pip install 'ray[default]' (constraints.txt)")]
    checks = [Check("ray", "ok", True, f"ray {version}")]
    missing = [m for m in ("aiohttp", "aiohttp_cors") if importlib.util.find_spec(m) is None]
    checks.append(Check("ray dashboard", "warn" if missing else "ok", False,
                        f"missing {', '.join(missing)}: no dashboard / Jobs API (`submit`, --dashboard)" if missing
                        else "dashboard and Jobs API dependencies installed", "pip install 'ray[default]'"))
    return checks


def check_shm(path: str = "/dev/shm") -> list[Check]:
    try:
        st = os.statvfs(path)
    except OSError:
        return [Check("shared memory", "warn", False, f"{path} not found: Ray's object store falls back to /tmp",
                      "docker run --shm-size=8g ...")]
    total, free = st.f_blocks * st.f_frsize, st.f_bavail * st.f_frsize
    gib = 1 << 30
    detail = f"{path}: {free / gib:.1f} GiB free of {total / gib:.1f} GiB (Ray's object store)"
    if free < MIN_SHM_BYTES:
        return [Check("shared memory", "warn", False, detail + f"; under {MIN_SHM_BYTES // gib} GiB Ray spills to disk",
                      "docker run --shm-size=8g ... (or free space in /dev/shm)")]
    return [Check("shared memory", "ok", False, detail)]


def tracking_uri(work_dir: str | None, uri: str | None) -> str:
    """The URI the commands would use, computed without creating the work dir."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    work = work_dir or os.environ.get("VIDEXPERTS_WORK_DIR") or "work"
    return f"sqlite:///{Path(work).resolve() / 'mlflow.db'}"


def check_tracking(uri: str) -> list[Check]:
    if uri.startswith(("http://", "https://")):
        from videxperts.training.tracking import TrackingUnavailable
        from videxperts.training.tracking import check_tracking as probe

        try:
            probe(uri, timeout_s=5.0)
        except TrackingUnavailable as exc:
            return [Check("tracking", "missing", True, str(exc), "start the server, or pass --tracking-uri")]
        return [Check("tracking", "ok", True, f"{uri} answers")]
    if uri.startswith("sqlite:///"):
        path = Path(urllib.parse.unquote(uri[len("sqlite:///"):]))
        if not path.exists():
            parent = next((p for p in [path.parent, *path.parent.parents] if p.exists()), Path("/"))
            if os.access(parent, os.W_OK):
                return [Check("tracking", "ok", True, f"{path} does not exist yet; the first train/extract creates it")]
            return [Check("tracking", "missing", True, f"{path} cannot be created ({parent} is not writable)",
                          "pass --work-dir or --tracking-uri")]
        try:
            with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as db:
                n = db.execute("SELECT COUNT(*) FROM experiments").fetchone()[0]
        except sqlite3.Error as exc:
            return [Check("tracking", "missing", True, f"{path}: not a readable MLflow database ({exc})",
                          "point --tracking-uri elsewhere, or move the file aside")]
        return [Check("tracking", "ok", True, f"{path}: {n} experiments")]
    return [Check("tracking", "ok", True, f"{uri} (not probed: only sqlite and http(s) are checked)")]


def check_configs() -> list[Check]:
    from videxperts.errors import UserError
    from videxperts.extractors.registry import load_profile
    from videxperts.resources import config_names, configs_root
    from videxperts.training.config import load_config

    loaders: dict[str, Callable[[str], object]] = {"extract": load_profile, "train": load_config}
    names = {kind: config_names(kind) for kind in loaders}
    bad = []
    for kind, load in loaders.items():
        for name in names[kind]:
            try:
                load(name)
            except UserError as exc:
                bad.append(first_line(exc, 200))
    counts = f"{len(names['extract'])} extraction profiles, {len(names['train'])} training configs in {configs_root()}"
    if not names["extract"] or not names["train"]:
        return [Check("configs", "missing", True, f"{counts}", "reinstall videxperts, or fix $VIDEXPERTS_CONFIGS")]
    if bad:
        return [Check("configs", "missing", True, f"{counts}; {len(bad)} do not load: {bad[0]}",
                      "fix the config named, or $VIDEXPERTS_CONFIGS")]
    return [Check("configs", "ok", True, counts)]


def run_checks(work_dir: str | None = None, uri: str | None = None) -> list[Check]:
    """Every check, in the order printed."""
    return [*check_programs(), *check_torch(), *check_decoders(), *check_ray(), *check_shm(),
            *check_tracking(tracking_uri(work_dir, uri)), *check_configs()]
