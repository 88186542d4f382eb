"""Balancing an extraction job's stages by what they cost: threads, replicas and batch sizes.

A decode-once pipeline is paced by its slowest stage. With one single-threaded actor per
expert, an expert ten times heavier than the others keeps one core busy while the rest idle;
with every actor spawning an all-core torch pool, the cores are oversubscribed instead. Here
each stage gets a share of the cluster's CPUs proportional to its measured cost (CPU-seconds
per second of video), and the share becomes replicas x torch threads:

* cost: a *calibration* in the expert's own actor on the device it runs on (a few synthetic
  units per candidate batch size: CPU seconds per unit on CPU, synchronised wall seconds per
  unit on CUDA), cached per machine, device and expert settings, and replaced by what real
  jobs observed (the stage's CPU seconds per video second) once a job has run;
* batch size: the candidate with the lowest measured cost per unit (on CPU small batches
  often win; on a GPU large ones do);
* allocation (:func:`allocate`, pure): share = CPUs x cost / total cost; a share up to
  ``max_threads`` is one actor with ``round(share)`` torch threads, a larger one several
  replicas; the decoder is single-threaded, so its share becomes replicas. Each actor sets
  its torch intra-op threads explicitly to its share, so the threads of the busy stages add up
  to the cores and no actor spawns an all-core pool (the opposite failure).

Why a cached calibration rather than autoscaling the pools by busy time: a job of 20 short
clips is over before an autoscaler has seen enough busy time to act, and each new replica pays
a process start and a model load (seconds on 2 cores), which is the start-up cost that already
dominates short jobs. A calibration measured once per machine costs nothing on later jobs, and
what the jobs observe refines it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

# CPU-seconds per video-second of experts that are not calibrated on synthetic input (their
# cost depends on content: a face detector on noise finds nothing). Measured values from
# docs/EXPERTS_ENGINES.md; replaced by what jobs observe on this machine.
PRIOR_CPU_S_PER_VIDEO_S = {"ocr": 0.110, "face": 0.263, "speech": 0.298}
DEFAULT_PRIOR = 0.1
MAX_THREADS = 4
CPU_BATCHES = (1, 2, 4, 8, 16)
GPU_BATCHES = (1, 2, 4, 8, 16, 32, 64, 128)
CALIBRATION_BUDGET_S = 4.0  # seconds per expert (CPU); CUDA sweeps get 5x
TEXT_SHARE = 0.25  # caption encoders run in short bursts; they get a fixed small share
OBSERVED_WEIGHT = 0.5  # exponential average of what successive jobs observe


# ----------------------------------------------------------------------------- allocation
@dataclass
class Allocation:
    """One stage's share of the cluster and how it is realised."""

    name: str
    share: float  # CPUs this stage gets in total
    replicas: int
    threads: int  # torch intra-op threads per replica
    ray_cpus: float  # what each replica asks Ray for (Ray needs whole numbers above 1)
    num_gpus: float = 0.0


def _ray_quantity(x: float) -> float:
    """Ray accepts fractions below 1 and whole numbers above; round down so the sum still fits."""
    if x >= 1.0:
        return float(math.floor(x + 1e-9))
    return max(0.01, math.floor(x * 1000) / 1000)


def allocate(
    costs: dict[str, float],
    cpus: float,
    *,
    fixed: dict[str, float] | None = None,
    min_replicas: dict[str, int] | None = None,
    single_threaded: frozenset[str] = frozenset({"decode"}),
    max_threads: int = MAX_THREADS,
) -> dict[str, Allocation]:
    """Split ``cpus`` over the stages in proportion to ``costs`` (CPU-s per video-s).

    ``fixed``: stages with a set CPU share (GPU experts, caption encoders), taken off first.
    ``min_replicas``: a floor per stage (a profile's ``replicas``). The shares of the
    proportional stages add up to the CPUs left after ``fixed``.
    """
    fixed = dict(fixed or {})
    min_replicas = dict(min_replicas or {})
    out: dict[str, Allocation] = {}
    for name, share in fixed.items():
        out[name] = Allocation(name, share, max(1, min_replicas.get(name, 1)), 1, _ray_quantity(share))
    avail = max(cpus - sum(fixed.values()), 0.1 * max(len(costs), 1))
    total = sum(max(c, 0.0) for c in costs.values())
    cap = max(1, min(max_threads, int(math.floor(cpus + 1e-9))))
    for name, cost in costs.items():
        share = avail * (max(cost, 0.0) / total if total > 0 else 1.0 / len(costs))
        if name in single_threaded:
            replicas = max(1, int(round(share)))
        else:
            replicas = 1 if share <= cap else math.ceil(share / cap)
        replicas = max(replicas, min_replicas.get(name, 1))
        per = share / replicas
        threads = 1 if name in single_threaded else min(cap, max(1, int(round(per))))
        out[name] = Allocation(name, round(share, 4), replicas, threads, _ray_quantity(per))
    return out


def core_use(costs: dict[str, float], allocs: dict[str, Allocation], cpus: float) -> float:
    """Fraction of the cores a pipeline with this allocation keeps busy, from the costs alone.

    The pipeline runs at the pace of its slowest stage, ``min(replicas x threads / cost)``
    video-seconds per second, and that rate spends ``sum(cost)`` CPU-s per video-second.
    Parallel efficiency is taken as perfect (an upper bound that ranks allocations).
    """
    rates = [allocs[n].replicas * allocs[n].threads / c for n, c in costs.items() if c > 0 and n in allocs]
    if not rates or cpus <= 0:
        return 0.0
    return min(1.0, min(rates) * sum(costs.values()) / cpus)


# ----------------------------------------------------------------------------- calibration
def units_per_video_second(needs: Any) -> float:
    """How many network inputs one second of video makes for an expert with these needs."""
    if needs.frames is not None:
        return needs.frames.fps / max(1, needs.frames.clip_stride)
    if needs.audio is not None and needs.audio.segment_seconds:
        return 1.0 / needs.audio.segment_seconds
    return 1.0


def synthetic_view(expert: Any, units: int, seed: int = 0) -> Any:
    """A view of random pixels / noise holding exactly ``units`` inputs of ``expert``."""
    from videxperts.extractors.base import MediaView

    rng = np.random.default_rng(seed)
    needs = expert.needs
    view = MediaView(video_id="calibration", duration=1.0)
    if needs.frames is not None:
        f = needs.frames
        n = (units - 1) * f.clip_stride + f.clip_len
        size = int(f.size or 224)
        view.frames = rng.integers(0, 256, (n, size, size * 4 // 3, 3), dtype=np.uint8)
        view.frame_times = np.arange(n, dtype=np.float64) / f.fps
        view.duration = n / f.fps
    if needs.audio is not None:
        a = needs.audio
        seg = a.segment_seconds or 1.0
        samples = int(round(units * seg * a.sample_rate)) + int(getattr(a, "tail_seconds", 0.0) * a.sample_rate)
        view.audio = (0.1 * rng.standard_normal(samples)).astype(np.float32)
        view.sample_rate = a.sample_rate
        view.duration = samples / a.sample_rate
    return view


def calibratable(expert: Any) -> bool:
    """Torch experts: their cost per unit does not depend on what the pixels show."""
    return hasattr(expert, "make_batch") and hasattr(expert, "batch_size")


def measure_expert(expert: Any, device: str, candidates: tuple[int, ...] | None = None,
                   budget_s: float = CALIBRATION_BUDGET_S) -> dict[str, Any]:
    """Cost per unit of a loaded expert at each candidate batch size; picks the cheapest.

    CPU: ``process_time`` per unit (all threads of the process: cores are the scarce resource);
    CUDA: wall time per unit after ``torch.cuda.synchronize``, each size run twice and the
    second taken (a new input shape pays cuDNN's algorithm search once: measured on an H200,
    without this every batch above 1 looked slower). A warm-up call runs first; on CPU the
    sweep stops when a larger batch costs 15 % more than the best, on CUDA it goes on (costs
    per unit fall unevenly there); both stop at the budget or the device's memory.
    """
    import torch

    cuda = device.startswith("cuda")
    cands = candidates or (GPU_BATCHES if cuda else CPU_BATCHES)
    budget_s = budget_s * (5 if cuda else 1)
    saved = expert.batch_size
    costs: dict[int, float] = {}
    t_start = time.monotonic()
    try:
        expert.batch_size = cands[0]
        expert.extract([synthetic_view(expert, cands[0])])  # warm-up (allocator, kernels, caches)
        for b in cands:
            view = synthetic_view(expert, b, seed=b)
            expert.batch_size = b
            if cuda:
                torch.cuda.synchronize()
            try:
                for _ in range(2 if cuda else 1):
                    w0, c0 = time.perf_counter(), time.process_time()
                    expert.extract([view])
                    if cuda:
                        torch.cuda.synchronize()
            except torch.cuda.OutOfMemoryError:  # the device's limit: the previous size is the largest
                torch.cuda.empty_cache()
                break
            spent = (time.perf_counter() - w0) if cuda else (time.process_time() - c0)
            costs[b] = spent / b
            best = min(costs.values())
            if (not cuda and costs[b] > 1.15 * best) or time.monotonic() - t_start > budget_s:
                break
    finally:
        expert.batch_size = saved
    best_b = min(costs, key=lambda k: (costs[k], k))
    per_s = units_per_video_second(expert.needs)
    return {"batch_size": best_b, "unit_s": {str(k): round(v, 6) for k, v in costs.items()},
            "clock": "cuda-wall" if cuda else "cpu", "units_per_video_s": per_s,
            "cost_per_video_s": round(costs[best_b] * per_s, 6), "device": device,
            "threads": torch.get_num_threads(), "seconds": round(time.monotonic() - t_start, 3)}


# ----------------------------------------------------------------------------- cache
def host_signature() -> str:
    """What makes a measurement of this machine reusable: CPU model, core count, torch version."""
    model = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import torch

        tv = torch.__version__
    except ImportError:  # pragma: no cover
        tv = "?"
    return f"{model}|{os.cpu_count()}|torch {tv}"


def settings_key(stage: str, settings: dict[str, Any], device: str) -> str:
    blob = json.dumps([stage, settings, device, host_signature()], sort_keys=True, default=str)
    return f"{stage}:{device}:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


def cache_path() -> Path:
    root = os.environ.get("VIDEXPERTS_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "videxperts")
    return Path(root) / "balance.json"


class CostCache:
    """Measured costs by key, one JSON file per user; written atomically (last job wins)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or cache_path()
        try:
            self.data: dict[str, dict[str, Any]] = json.loads(self.path.read_text())
            if not isinstance(self.data, dict):
                self.data = {}
        except (OSError, ValueError):
            self.data = {}

    def get(self, key: str) -> dict[str, Any] | None:
        v = self.data.get(key)
        return v if isinstance(v, dict) else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.data[key] = {**(self.get(key) or {}), **value, "updated": time.time()}

    def save(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".balance-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump(self.data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:  # a read-only home: the job still runs, it just measures again next time
            pass


# ----------------------------------------------------------------------------- the job's balancer
@dataclass
class StageCost:
    name: str
    cost: float  # CPU-s per video-s (GPU experts: their device seconds per video-s)
    source: str  # calibrated | cached | observed | prior
    key: str
    device: str = "cpu"
    batch_size: int | None = None
    calibration: dict[str, Any] | None = None


@dataclass
class Balancer:
    """Plans the stages of one job from measured costs and records what the job observes."""

    cpus: float
    gpus: float
    cache: CostCache = field(default_factory=CostCache)
    costs: dict[str, StageCost] = field(default_factory=dict)
    allocs: dict[str, Allocation] = field(default_factory=dict)
    observed: dict[str, list[float]] = field(default_factory=dict)  # stage -> [cpu_s, video_s, items]
    calibration_s: float = 0.0
    calibration_cpu_s: float = 0.0

    # -- costs
    def expert_key(self, name: str, plan: Any, device: str) -> str:
        return settings_key(name, plan.provenance.get("settings", {}), device)

    def decode_key(self, plans: dict[str, Any]) -> str:
        needs = sorted((n, json.dumps(p.needs.to_dict(), sort_keys=True, default=str)) for n, p in plans.items())
        return settings_key("decode", {"needs": needs}, "cpu")

    def known(self, key: str) -> dict[str, Any] | None:
        return self.cache.get(key)

    def expert_cost(self, name: str, plan: Any, device: str, measured: dict[str, Any] | None) -> StageCost:
        key = self.expert_key(name, plan, device)
        entry = self.cache.get(key) or {}
        if measured is not None:
            self.cache.put(key, {"calibration": measured})
            entry = self.cache.get(key) or {}
        cal = entry.get("calibration")
        batch = int(cal["batch_size"]) if cal else None
        if "observed" in entry and device == "cpu":
            return StageCost(name, float(entry["observed"]), "observed", key, device, batch, cal)
        if cal:
            return StageCost(name, float(cal["cost_per_video_s"]), "calibrated" if measured else "cached", key,
                             device, batch, cal)
        return StageCost(name, PRIOR_CPU_S_PER_VIDEO_S.get(name, DEFAULT_PRIOR), "prior", key, device)

    def decode_cost(self, plans: dict[str, Any]) -> StageCost:
        key = self.decode_key(plans)
        entry = self.cache.get(key) or {}
        if "observed" in entry:
            return StageCost("decode", float(entry["observed"]), "observed", key)
        fps = max([p.needs.frames.fps for p in plans.values() if p.needs.frames is not None] or [0.0])
        audio = any(p.needs.audio is not None for p in plans.values())
        return StageCost("decode", 0.005 + 0.006 * min(fps, 30.0) + (0.005 if audio else 0.0), "prior", key)

    # -- allocation
    def plan(self, costs: dict[str, StageCost], *, gpu_stages: dict[str, float], text_stages: list[str],
             min_replicas: dict[str, int]) -> dict[str, Allocation]:
        self.costs = costs
        fixed = {s: TEXT_SHARE for s in text_stages}
        fixed.update({s: 1.0 if self.cpus >= 4 else 0.5 for s in gpu_stages})
        cpu_costs = {n: c.cost for n, c in costs.items() if n not in gpu_stages}
        self.allocs = allocate(cpu_costs, self.cpus, fixed=fixed, min_replicas=min_replicas)
        for s, g in gpu_stages.items():
            self.allocs[s].num_gpus = g
        return self.allocs

    # -- observation during the job
    def observe(self, stage: str, status: dict[str, Any]) -> None:
        if not status.get("ok") or status.get("cpu_s") is None or not status.get("video_s"):
            return
        o = self.observed.setdefault(stage, [0.0, 0.0, 0])
        o[0] += float(status["cpu_s"])
        o[1] += float(status["video_s"])
        o[2] += 1

    def learn(self) -> None:
        """Fold the job's observed cost per video-second into the cache (CPU stages only)."""
        for stage, (cpu_s, video_s, _n) in self.observed.items():
            c = self.costs.get(stage)
            if c is None or c.device != "cpu" or video_s <= 0:
                continue
            seen = cpu_s / video_s
            old = (self.cache.get(c.key) or {}).get("observed")
            value = seen if old is None else OBSERVED_WEIGHT * seen + (1 - OBSERVED_WEIGHT) * float(old)
            self.cache.put(c.key, {"observed": round(value, 6)})
        self.cache.save()

    def report(self) -> dict[str, Any]:
        costs = {n: c.cost for n, c in self.costs.items() if c.device == "cpu"}
        stages = {}
        for name, a in self.allocs.items():
            c = self.costs.get(name)
            o = self.observed.get(name)
            stages[name] = {
                **{k: v for k, v in asdict(a).items() if k != "name"},
                "cost_per_video_s": round(c.cost, 6) if c else None,
                "cost_source": c.source if c else "fixed",
                "device": c.device if c else "cpu",
                "batch_size": c.batch_size if c else None,
                "batch_unit_s": (c.calibration or {}).get("unit_s") if c else None,
                "observed_cpu_s_per_video_s": round(o[0] / o[1], 6) if o and o[1] > 0 else None,
            }
        return {"mode": "measured", "cpus": self.cpus, "predicted_core_use": round(core_use(costs, self.allocs, self.cpus), 3),
                "calibration_s": round(self.calibration_s, 3), "calibration_cpu_s": round(self.calibration_cpu_s, 3),
                "stages": stages}


# ----------------------------------------------------------------------------- CPU accounting
def proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a live process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def ray_daemon_pids() -> list[int]:
    """PIDs of the Ray node processes this driver started (empty when it joined a cluster)."""
    try:
        import ray._private.worker as rw

        node = rw._global_node
        if node is None or not getattr(node, "head", False):
            return []
        pids = []
        for infos in node.all_processes.values():
            for info in infos:
                proc = getattr(info, "process", None)
                if proc is not None and getattr(proc, "pid", None):
                    pids.append(int(proc.pid))
        return pids
    except Exception:  # noqa: BLE001 - private API; accounting is best effort
        return []


def cpu_breakdown(reports: list[dict[str, Any]], driver_cpu_s: float, daemons_cpu_s: float | None,
                  calibration_cpu_s: float) -> dict[str, Any]:
    """Where the job's CPU went: models vs everything around them (see docs/EXTRACTION.md).

    ``reports``: every actor's ``cpu_report()`` (stage, process CPU at ready and at the end,
    CPU inside calls, CPU inside the network's forward).
    """
    parts = {"models": 0.0, "expert_prep": 0.0, "decode": 0.0, "writers": 0.0, "actors_startup": 0.0,
             "ray_between_calls": 0.0}
    for r in reports:
        parts["actors_startup"] += r.get("startup_cpu_s", 0.0)
        calls = r.get("calls_cpu_s", 0.0)
        outside = max(0.0, r.get("process_cpu_s", 0.0) - r.get("startup_cpu_s", 0.0) - calls)
        parts["ray_between_calls"] += outside
        if r.get("stage") == "decode":
            parts["decode"] += calls
        elif r.get("stage") == "writer":
            parts["writers"] += calls
        else:
            model = min(calls, r.get("model_cpu_s", 0.0))
            parts["models"] += model
            parts["expert_prep"] += calls - model
    parts["driver"] = driver_cpu_s
    parts["calibration"] = calibration_cpu_s
    if daemons_cpu_s is not None:
        parts["ray_daemons"] = daemons_cpu_s
    total = sum(parts.values())
    out: dict[str, Any] = {k: round(v, 3) for k, v in parts.items()}
    out["total"] = round(total, 3)
    out["share"] = {k: round(v / total, 4) for k, v in parts.items()} if total > 0 else {}
    out["outside_models_share"] = round(1 - parts["models"] / total, 4) if total > 0 else None
    return out


class CpuMeter:
    """Per-actor CPU bookkeeping: process CPU at ready, inside calls and inside the model."""

    def __init__(self, stage: str) -> None:
        self.stage = stage
        self.startup = time.process_time()
        self.calls = 0.0
        self.model = 0.0

    def timed_model(self, fn: Any) -> Any:
        """Wrap a forward function so its CPU time is counted as the model's."""

        def wrapped(*a: Any, **kw: Any) -> Any:
            c0 = time.process_time()
            try:
                return fn(*a, **kw)
            finally:
                self.model += time.process_time() - c0

        return wrapped

    def report(self) -> dict[str, Any]:
        threads = None
        try:
            import sys

            if "torch" in sys.modules:
                threads = sys.modules["torch"].get_num_threads()
        except Exception:  # noqa: BLE001
            threads = None
        return {"stage": self.stage, "pid": os.getpid(), "process_cpu_s": time.process_time(),
                "startup_cpu_s": self.startup, "calls_cpu_s": self.calls, "model_cpu_s": self.model,
                "torch_threads": threads, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


# ----------------------------------------------------------------------------- wiring into the job
def balance_stages(pipe: Any, stages: list[Any], needed: list[str]) -> list[Any]:
    """Calibrate what is not cached, allocate, and rewrite the job's ``StagePlan`` list in place.

    Sets ``pipe.balancer``, ``pipe.stage_threads`` and the measured batch sizes on the expert
    plans (unless ``--batch-size`` fixed one). Calibration actors are started together (model
    loads overlap) and measured one at a time (so they do not compete for the cores).
    """
    import ray

    from videxperts.extractors.registry import build_expert
    from videxperts.pipelines.extract_actors import ExpertWorker

    cpus = float(pipe.cluster["num_cpus"]) if pipe.cluster else float(os.cpu_count() or 1)
    gpus = float(pipe.cluster["num_gpus"]) if pipe.cluster else 0.0
    bal = Balancer(cpus, gpus)
    plans = pipe.plan.experts
    devices = {e: "cuda" if plans[e].num_gpus > 0 and gpus > 0 else "cpu" for e in needed}
    fixed_batch = pipe.cfg.batch_size
    todo = []
    for e in needed:
        entry = bal.cache.get(bal.expert_key(e, plans[e], devices[e])) or {}
        cal = entry.get("calibration")
        stale = fixed_batch is not None and cal is not None and str(fixed_batch) not in cal.get("unit_s", {})
        if (cal is None or stale) and calibratable(build_expert(e, pipe.plan.profile)):
            todo.append(e)
    measured: dict[str, dict[str, Any]] = {}
    t0 = time.monotonic()
    if todo:
        remote = ray.remote(ExpertWorker)
        actors = {}
        for e in todo:
            # measured one at a time, so they need not hold a core each (which could not fit)
            opts: dict[str, Any] = {"num_cpus": _ray_quantity(min(1.0, cpus / (len(todo) + 1))), "max_restarts": 0}
            if devices[e] == "cuda":
                opts["num_gpus"] = min(plans[e].num_gpus, gpus)
            actors[e] = remote.options(**opts).remote(e, pipe.plan.profile, plans[e].batch_size, 1)
        try:
            for e, actor in actors.items():
                cands = (int(fixed_batch),) if fixed_batch else None
                result = None
                try:
                    result = ray.get(actor.calibrate.remote(cands))
                    bal.calibration_cpu_s += float(ray.get(actor.cpu_report.remote())["process_cpu_s"])
                except ray.exceptions.RayError as exc:  # the real pool reports a broken expert at start
                    pipe.plan.notes.append(f"calibration of {e} failed: {str(exc).splitlines()[0][:200]}")
                finally:
                    ray.kill(actor, no_restart=True)
                if result is not None:
                    measured[e] = result
        finally:
            for actor in actors.values():
                ray.kill(actor, no_restart=True)
    bal.calibration_s = time.monotonic() - t0
    costs = {"decode": bal.decode_cost({e: plans[e] for e in needed})}
    for e in needed:
        costs[e] = bal.expert_cost(e, plans[e], devices[e], measured.get(e))
        if fixed_batch is None and costs[e].batch_size:
            plans[e].batch_size = int(costs[e].batch_size)
    text = [s.name for s in stages if s.name.startswith("text:")]
    allocs = bal.plan(costs, gpu_stages={e: plans[e].num_gpus for e in needed if devices[e] == "cuda"},
                      text_stages=text, min_replicas={e: plans[e].replicas for e in needed})
    for s in stages:
        a = allocs.get(s.name)
        if a is not None:
            s.replicas, s.num_cpus = a.replicas, a.ray_cpus
    pipe.stage_threads = {e: allocs[e].threads for e in needed}
    pipe.balancer = bal
    bal.cache.save()
    return stages


def collect_cpu(pipe: Any, driver_cpu_s: float) -> dict[str, Any] | None:
    """Ask every live actor where its CPU went and add the driver and the Ray daemons."""
    import ray

    refs = []
    for slots in getattr(pipe, "slots", {}).values():
        for s in slots:
            try:
                refs.append(s.handle.cpu_report.remote())
            except Exception:  # noqa: BLE001 - text workers have no meter; a dead actor reports nothing
                continue
    reports = []
    for ref in refs:
        try:
            reports.append(ray.get(ref, timeout=10))
        except Exception:  # noqa: BLE001
            continue
    daemons = [proc_cpu_s(p) for p in ray_daemon_pids()]
    daemons_s = sum(d for d in daemons if d is not None) if daemons else None
    bal = getattr(pipe, "balancer", None)
    out = cpu_breakdown(reports, driver_cpu_s, daemons_s, bal.calibration_cpu_s if bal else 0.0)
    out["actors"] = [{k: r.get(k) for k in ("stage", "pid", "torch_threads", "omp_num_threads")} for r in reports]
    return out
