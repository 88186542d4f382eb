"""Per-video bookkeeping of an extraction job: retry policy, outcomes and the summary.

Pure Python (no Ray) so that the rules are unit-testable:

* a typed :class:`~videxperts.extractors.base.VideoInputError` fails at once (retrying a zero-byte file
  cannot help);
* any other exception is retried until ``max_retries`` retries are spent, then recorded as
  failed with its attempts;
* a worker that dies while processing an item counts a *crash* for that item; at
  ``quarantine_after`` crashes the item is quarantined (a poison video must not keep killing
  workers), while items merely queued behind it are retried without blame.

A video is *done* when every requested expert is done, *quarantined* if any expert was
quarantined, otherwise *failed* if any expert failed. Every input ends in exactly one of
done / failed / quarantined / skipped (already done before the job) / pending (the job was
interrupted before it got there), and :meth:`Accounting.check` asserts that they add up.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

RETRY, FAIL, QUARANTINE = "retry", "fail", "quarantine"
INPUT, ERROR, CRASH, BYSTANDER = "input", "error", "crash", "bystander"


@dataclass(frozen=True)
class RetryPolicy:
    """How many ordinary retries an item gets, and after how many worker crashes it is quarantined."""

    max_retries: int = 2
    quarantine_after: int = 2

    def decide(self, kind: str, attempts: int, crashes: int) -> str:
        """Next step after a problem of ``kind``; ``attempts``/``crashes`` already include it."""
        if kind == INPUT:
            return FAIL
        if kind == CRASH:
            return QUARANTINE if crashes >= self.quarantine_after else RETRY
        if kind == BYSTANDER:
            return RETRY
        return FAIL if attempts > self.max_retries else RETRY


@dataclass
class ItemState:
    """One unit of work (decode of a video, or one expert on a video)."""

    attempts: int = 0
    crashes: int = 0
    state: str = "pending"  # pending | done | failed | quarantined
    error_class: str = ""
    message: str = ""


@dataclass
class VideoJob:
    """Everything the driver knows about one in-flight video."""

    video_id: str
    path: str
    experts: list[str]
    decode: ItemState = field(default_factory=ItemState)
    items: dict[str, ItemState] = field(default_factory=dict)
    view_refs: dict[str, Any] = field(default_factory=dict)
    written: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        for e in self.experts:
            self.items.setdefault(e, ItemState())

    def settle_all(self, state: str, error_class: str, message: str, attempts: int) -> None:
        """Give every unfinished expert the same outcome (the decode failed for all of them)."""
        for item in self.items.values():
            if item.state == "pending":
                item.state, item.error_class, item.message = state, error_class, message
                item.attempts = max(item.attempts, attempts)

    def finished(self) -> bool:
        """All experts settled and every done expert's features handed to a writer."""
        return all(
            i.state != "pending" and (i.state != "done" or e in self.written)
            for e, i in self.items.items()
        )

    def outcome(self) -> str:
        states = {i.state for i in self.items.values()}
        if "quarantined" in states:
            return "quarantined"
        if "failed" in states:
            return "failed"
        return "done"


class Accounting:
    """Counters of outcomes, per-stage work, and the nodes that did it."""

    OUTCOMES = ("done", "failed", "quarantined", "skipped", "pending")

    def __init__(self, inputs: int, skipped: int) -> None:
        self.inputs = inputs
        self.counts: Counter[str] = Counter({"skipped": skipped})
        self.stage_items: Counter[str] = Counter()
        self.stage_busy: defaultdict[str, float] = defaultdict(float)
        self.stage_cpu: defaultdict[str, float] = defaultdict(float)
        self.nodes: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.pids: defaultdict[str, set[int]] = defaultdict(set)
        self.retries = 0
        self.actor_crashes = 0
        self.started = time.monotonic()

    def record_outcome(self, outcome: str) -> None:
        self.counts[outcome] += 1

    def record_stage(self, stage: str, seconds: float, node_id: str | None, pid: int | None = None,
                     cpu_s: float | None = None) -> None:
        self.stage_items[stage] += 1
        self.stage_busy[stage] += float(seconds)
        if cpu_s is not None:
            self.stage_cpu[stage] += float(cpu_s)
        if node_id:
            self.nodes[stage][node_id] += 1
        if pid:
            self.pids[stage].add(int(pid))

    def settled(self) -> int:
        return sum(self.counts[k] for k in ("done", "failed", "quarantined", "skipped"))

    def check(self, pending: int = 0) -> None:
        """The invariant: every input is in exactly one outcome."""
        total = self.settled() + pending
        assert total == self.inputs, (
            f"accounting broken: done+failed+quarantined+skipped+pending={total} != inputs={self.inputs}"
        )

    def summary(self, *, pending: int, interrupted: bool, store: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """The job's final report (what ``--json`` prints)."""
        self.check(pending)
        wall = time.monotonic() - self.started
        stages = {}
        for stage in sorted(self.stage_items):
            n, busy = self.stage_items[stage], self.stage_busy[stage]
            stages[stage] = {
                "items": n,
                "worker_processes": len(self.pids.get(stage, ())),
                "busy_s": round(busy, 3),
                "cpu_s": round(self.stage_cpu.get(stage, 0.0), 3),
                "items_per_s_busy": round(n / busy, 3) if busy > 0 else None,
                "items_per_s_wall": round(n / wall, 3) if wall > 0 else None,
            }
        processed = self.counts["done"] + self.counts["failed"] + self.counts["quarantined"]
        out: dict[str, Any] = {
            "inputs": self.inputs,
            "done": self.counts["done"],
            "failed": self.counts["failed"],
            "quarantined": self.counts["quarantined"],
            "skipped": self.counts["skipped"],
            "pending": pending,
            "interrupted": interrupted,
            "retries": self.retries,
            "actor_crashes": self.actor_crashes,
            "wall_s": round(wall, 3),
            "videos_per_s": round(processed / wall, 3) if wall > 0 else None,
            "stages": stages,
            "nodes": {stage: dict(c) for stage, c in sorted(self.nodes.items())},
            "node_ids": sorted({n for c in self.nodes.values() for n in c}),
            "store": store,
        }
        out.update(extra or {})
        return out
