"""The extraction job: a streaming pipeline of Ray actor pools that survives failures and resumes.

One video's path through the job (docs/EXTRACTION.md has the design and why it is Ray core
actors rather than Ray Data)::

    driver ── decode ──► DecodeWorker (CPU): one decode for the union of the experts' needs;
                         returns a status + one object-store ref per expert view
           ── run ────► ExpertWorker pool per expert (declared CPUs / fractional GPUs),
                         fetches only its own view by ref; returns status + payload ref
           ── write ──► WriterWorker (own writer id / shard) buffers, commits every N or T s
    driver writer  ───► fail / quarantine records (small, from the driver)

The driver keeps at most ``max_inflight`` videos between "decode started" and "every expert
written", at most ``depth`` calls queued per actor, and holds each payload ref until its
writer reports the commit, so a dead writer loses nothing (the payload is resent). Actor
deaths are attributed to the oldest call on that actor (the one it was executing): that item
counts a crash (→ quarantine at 2), the calls queued behind it are retried without blame.
"""

from __future__ import annotations

import itertools
import os
import signal
import sys
import threading
import time
import uuid
import zlib
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from videxperts.errors import UserError, first_line
from videxperts.pipelines.extract_accounting import (
    BYSTANDER,
    CRASH,
    ERROR,
    INPUT,
    QUARANTINE,
    RETRY,
    Accounting,
    RetryPolicy,
    VideoJob,
)


@dataclass
class ExtractConfig:
    """Everything ``videxperts extract`` takes (see its --help)."""

    input: str
    out: str
    experts: list[str] | None = None
    profile: str = "demo"
    address: str | None = None
    decoder: str | None = None
    max_retries: int = 2
    quarantine_after: int = 2
    batch_size: int | None = None
    workers: int | None = None
    writers: int = 1
    max_inflight: int | None = None
    depth: int = 2
    commit_every: int = 16
    commit_seconds: float = 10.0
    tracking: bool = True
    tracking_uri: str | None = None
    experiment: str = "extract"
    captions: bool = True
    text_encoders: list[str] | None = None
    progress: bool = True
    verbose: bool = False  # stream the Ray workers' output (model loading, library notices) to stderr
    num_cpus: int | None = None
    run_name: str | None = None
    overwrite_experts: list[str] = field(default_factory=list)
    extra_params: dict[str, Any] = field(default_factory=dict)
    balance: bool = True  # size threads, replicas and batch sizes from measured costs (extract_balance.py)


@dataclass
class Call:
    """One outstanding remote call the driver waits on."""

    kind: str  # decode | expert | write | text | ping
    slot: Slot | None
    video_id: str | None = None
    expert: str | None = None
    token: int = 0
    refs: tuple[Any, ...] = ()
    seqs: tuple[int, ...] = ()
    experts: tuple[str, ...] = ()


@dataclass
class Slot:
    """One actor of a pool, with its queue of outstanding calls (oldest first)."""

    key: str
    stage: str
    handle: Any
    make: Any  # () -> new handle, for replacing a permanently dead actor
    inflight: deque[int] = field(default_factory=deque)
    probing: bool = False
    replacements: int = 0


class Interrupted(Exception):
    """Raised inside the loop when a stop was requested (SIGINT/SIGTERM)."""


class StoreWriteFailed(UserError):
    """A writer could not commit (no space, read-only filesystem, ...): the job ends at once.

    Every later write would fail the same way, so waiting or retrying only hides the cause;
    what was committed before stays readable and a re-run resumes from it.
    """


class Pipeline:
    """Runs one job; ``run()`` returns the summary dict."""

    def __init__(self, cfg: ExtractConfig) -> None:
        self.cfg = cfg
        self.policy = RetryPolicy(cfg.max_retries, cfg.quarantine_after)
        self.tokens = itertools.count(1)
        self.seqs = itertools.count(1)
        self.calls: dict[Any, Call] = {}
        self.slots: dict[str, list[Slot]] = {}
        self.jobs: dict[str, VideoJob] = {}
        self.decode_queue: deque[str] = deque()
        self.expert_queues: dict[str, deque[str]] = {}
        self.uncommitted: dict[str, dict[int, tuple[str, str | None, Any]]] = {}
        self.writer_dead: set[str] = set()
        self.current_token: dict[tuple[str, str], int] = {}
        self.stop_requested = False
        self.failures: list[dict[str, Any]] = []
        self.text_calls = 0
        self.finished: set[str] = set()
        self.outcomes: dict[str, str] = {}
        self.balancer: Any = None
        self.stage_threads: dict[str, int] = {}

    # ---------------------------------------------------------------- setup
    def _open(self) -> None:
        from videxperts.cluster.local import connect
        from videxperts.extractors.registry import load_profile
        from videxperts.pipelines.extract_inputs import list_inputs
        from videxperts.pipelines.extract_plan import JobPlan, plan_experts, plan_text, resolve_experts
        from videxperts.storage.store import FeatureStore

        cfg = self.cfg
        self.inputs = list_inputs(cfg.input, with_captions=cfg.captions)
        ids = [v.video_id for v in self.inputs.videos]
        _check_unique(cfg.input, self.inputs.videos)
        profile = load_profile(cfg.profile)
        names = resolve_experts(profile, cfg.experts)
        self.plan = JobPlan(profile, plan_experts(profile, names, cfg.batch_size))
        if self.inputs.captions:
            self.plan.text = plan_text(profile, cfg.text_encoders)
        if cfg.tracking:  # after the config checks, before the store, the pending list and Ray:
            from videxperts.pipelines.extract_tracking import check_job_tracking

            check_job_tracking(cfg.tracking_uri, cfg.out)  # unreachable: one line, not minutes of retries
        dec = profile.get("decoder") or {}
        self.backend = cfg.decoder or dec.get("backend", "decord")
        self.decode_options = {k: dec.get(k) for k in ("window_seconds", "timeout_s", "max_pixels")}
        self.store = FeatureStore.open(cfg.out, mode="a")
        self._overwrite(cfg.overwrite_experts)
        for e in self.plan.experts.values():
            self.store.ensure_expert(e.name, e.dim, e.provenance)
        for t in self.plan.text.values():
            self.store.ensure_text_encoder(t.name, t.dim, t.provenance)
        pending = self.store.pending(ids, names)
        self.todo = {v: sorted(pending.get(v) or []) for v in ids}
        self.todo = {v: ex for v, ex in self.todo.items() if ex}
        self.paths = {v.video_id: v.path for v in self.inputs.videos}
        self.acc = Accounting(len(ids), skipped=len(ids) - len(self.todo))
        self.text_todo = self._text_todo()
        self.cluster = (connect(cfg.address, num_cpus=cfg.num_cpus, log_to_driver=cfg.verbose)
                        if (self.todo or self.text_todo) else None)
        self.job_tag = uuid.uuid4().hex[:8]
        self.driver_writer = self.store.writer(f"driver-{self.job_tag}")

    def _overwrite(self, names: list[str]) -> None:
        """``--overwrite-expert NAME``: discard NAME's features (expert or caption encoder) so this
        job registers NAME as it is configured now and extracts every video again for it."""
        planned = set(self.plan.experts) | set(self.plan.text)
        unknown = [n for n in names if n not in planned]
        if unknown:
            raise UserError(f"--overwrite-expert {','.join(unknown)}: not an expert or text encoder of this job "
                            f"({', '.join(sorted(planned))})")
        for name in names:
            if name in self.plan.experts and name in self.store.experts:
                self.store.drop_expert(name)
            if name in self.plan.text and name in self.store.text_encoders:
                self.store.drop_text_encoder(name)

    def _text_todo(self) -> list[tuple[str, str, int, str]]:
        """(encoder, video_id, caption_idx, text) still to encode (all of them if the store can't tell)."""
        if not self.inputs.captions or not self.plan.text:
            return []
        ids = sorted(self.inputs.captions)
        out = []
        done = self._text_done()
        for enc in self.plan.text:
            for vid in ids:
                out.extend((enc, vid, idx, text) for idx, text in self.inputs.captions[vid]
                           if (enc, vid, idx) not in done)
        return out

    def _text_done(self) -> set[tuple[str, str, int]]:
        """(encoder, video_id, caption_idx) already committed, from the store's latest records."""
        try:
            df = self.store.snapshot().records
        except AttributeError:  # a store without snapshots: encode everything again
            return set()
        df = df[(df["kind"] == "text") & (df["state"] == "done")]
        return set(zip(df["name"].astype(str), df["video_id"].astype(str), df["caption_idx"].astype(int),
                       strict=True))

    def _start_pools(self) -> None:
        import ray

        from videxperts.pipelines.extract_actors import DecodeWorker, ExpertWorker, TextWorker, WriterWorker
        from videxperts.pipelines.extract_plan import StagePlan, fit_resources

        cfg = self.cfg
        needed = sorted({e for ex in self.todo.values() for e in ex})
        cpus = self.cluster["num_cpus"] if self.cluster else 1.0
        gpus = self.cluster["num_gpus"] if self.cluster else 0.0
        per_chain = 1.0 + sum(self.plan.experts[e].num_cpus * self.plan.experts[e].replicas for e in needed)
        workers = cfg.workers or max(1, int(cpus // max(per_chain, 1.0)))
        stages = [StagePlan("decode", workers if self.todo else 0, 1.0)]
        for e in needed:
            p = self.plan.experts[e]
            stages.append(StagePlan(e, workers * p.replicas, p.num_cpus, p.num_gpus, p.memory_mb))
        if self.text_todo:
            stages += [StagePlan(f"text:{t}", 1, 1.0) for t in self.plan.text]
        if cfg.balance and cfg.workers is None and self.todo:
            from videxperts.pipelines.extract_balance import balance_stages

            stages = balance_stages(self, stages, needed)
            workers = stages[0].replicas
        stages, notes = fit_resources(stages, cpus, gpus)
        self.plan.notes.extend(notes)
        self.plan.stages = {s.name: s for s in stages}
        self.workers = workers
        self.max_inflight = cfg.max_inflight or max(4, 3 * workers)
        strategy = "SPREAD"
        prefix = f"videxperts-{self.job_tag}"

        def pool(stage: StagePlan, cls: type, args: tuple, restarts: int = -1) -> list[Slot]:
            remote_cls = ray.remote(cls)
            slots = []
            for i in range(stage.replicas):
                opts: dict[str, Any] = {
                    "num_cpus": stage.num_cpus, "num_gpus": stage.num_gpus, "max_restarts": restarts,
                    "max_task_retries": 0, "scheduling_strategy": strategy,
                    "name": f"{prefix}-{stage.name.replace(':', '-')}-{i}",
                }
                if stage.memory_mb:
                    opts["memory"] = int(stage.memory_mb) * 1024 * 1024
                key = f"{stage.name}#{i}"

                def make(opts: dict[str, Any] = opts, gen: list[int] = [0]) -> Any:  # noqa: B006
                    gen[0] += 1
                    o = dict(opts)
                    if gen[0] > 1:
                        o["name"] = f"{opts['name']}-r{gen[0]}"
                    return remote_cls.options(**o).remote(*args)

                slots.append(Slot(key, stage.name, make(), make))
            return slots

        st = self.plan.stages
        self.slots["decode"] = pool(st["decode"], DecodeWorker, (self.backend, self.decode_options))
        for e in needed:
            p = self.plan.experts[e]
            threads = self.stage_threads.get(e) or max(1, int(round(st[e].num_cpus)))
            self.slots[e] = pool(st[e], ExpertWorker, (e, self.plan.profile, p.batch_size, threads))
            self.expert_queues[e] = deque()
        for t in self.plan.text if self.text_todo else []:
            self.slots[f"text:{t}"] = pool(st[f"text:{t}"], TextWorker, (t, self.plan.text[t].cfg, 1))
        self.slots["writer"] = []  # one pool per writer: each has its own writer id (its own shard)
        for i in range(max(1, cfg.writers)):
            wid = f"w{i}-{self.job_tag}"
            one = pool(StagePlan(f"writer{i}", 1, 0.0), WriterWorker, (cfg.out, wid, cfg.commit_every, cfg.commit_seconds))
            one[0].stage = "writer"
            self.slots["writer"].extend(one)
        for s in self.slots["writer"]:
            self.uncommitted[s.key] = {}
        # Wait for every model to load: a broken expert is a configuration error, not N failures.
        for stage, slots in self.slots.items():
            for s in slots:
                try:
                    ray.get(s.handle.ping.remote())
                except ray.exceptions.RayActorError as exc:
                    raise UserError(f"the {stage} workers could not start: {first_line(exc, 300)}") from exc

    # ---------------------------------------------------------------- dispatch
    def _free_slot(self, stage: str) -> Slot | None:
        best = None
        for s in self.slots.get(stage, []):
            if s.probing or len(s.inflight) >= self.cfg.depth:
                continue
            if best is None or len(s.inflight) < len(best.inflight):
                best = s
        return best

    def _admit(self, waiting: deque[str]) -> None:
        while waiting and len(self.jobs) < self.max_inflight and not self.stop_requested:
            vid = waiting.popleft()
            self.jobs[vid] = VideoJob(vid, self.paths[vid], self.todo[vid])
            self.decode_queue.append(vid)

    def _dispatch(self) -> None:
        while self.decode_queue:
            slot = self._free_slot("decode")
            if slot is None:
                break
            vid = self.decode_queue.popleft()
            job = self.jobs.get(vid)
            if job is None:
                continue
            experts = [e for e, i in job.items.items() if i.state == "pending" and e not in job.view_refs]
            if not experts:
                continue
            needs = {e: self.plan.experts[e].needs for e in experts}
            token = next(self.tokens)
            self.current_token[(vid, "")] = token
            refs = slot.handle.decode.options(num_returns=1 + len(experts)).remote(vid, job.path, needs, experts)
            self._track(Call("decode", slot, vid, None, token, tuple(refs), experts=tuple(experts)), refs[0])
        for expert, queue in self.expert_queues.items():
            while queue:
                slot = self._free_slot(expert)
                if slot is None:
                    break
                vid = queue.popleft()
                job = self.jobs.get(vid)
                if job is None or job.items[expert].state != "pending":
                    continue
                if expert not in job.view_refs:  # its view was dropped (lost object): decode again
                    self.decode_queue.append(vid)
                    continue
                token = next(self.tokens)
                self.current_token[(vid, expert)] = token
                status, payload = slot.handle.run.options(num_returns=2).remote(vid, job.view_refs[expert])
                self._track(Call("expert", slot, vid, expert, token, (status, payload)), status)

    def _track(self, call: Call, ref: Any) -> None:
        if call.slot is not None:
            call.slot.inflight.append(call.token)
        self.calls[ref] = call

    # ---------------------------------------------------------------- results
    def _untrack(self, ref: Any) -> Call:
        call = self.calls.pop(ref)
        if call.slot is not None and call.token in call.slot.inflight:
            call.slot.inflight.remove(call.token)
        return call

    def _handle(self, ref: Any) -> None:
        import ray

        call = self.calls.get(ref)
        if call is None:
            return
        try:
            value = ray.get(ref)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            self._actor_died(call.slot, exc)
            return
        except ray.exceptions.RayError as exc:  # e.g. an object lost with its node: a bounded retry
            call = self._untrack(ref)
            if call.kind in ("write", "text_write", "flush") and isinstance(exc, ray.exceptions.RayTaskError):
                raise StoreWriteFailed(f"a writer of {self.cfg.out} failed: {first_line(exc.cause or exc, 600)}") from None
            if call.kind == "decode":
                job = self.jobs.get(call.video_id)
                if job is not None and self.current_token.get((call.video_id, "")) == call.token:
                    job.decode.attempts += 1
            self._retry_after(call, ERROR, first_line(exc, 300))
            return
        call = self._untrack(ref)
        getattr(self, f"_on_{call.kind}")(call, value)

    def _on_ping(self, call: Call, value: Any) -> None:
        call.slot.probing = False
        if call.slot.stage == "writer" and call.slot.key in self.writer_dead:
            self.writer_dead.discard(call.slot.key)
            self._resend(call.slot)

    def _on_decode(self, call: Call, status: dict[str, Any]) -> None:
        job = self.jobs.get(call.video_id)
        if job is None or self.current_token.get((call.video_id, "")) != call.token:
            return
        self.acc.record_stage("decode", status.get("seconds", 0.0), status.get("node_id"), status.get("pid"),
                             status.get("cpu_s"))
        if self.balancer is not None:
            self.balancer.observe("decode", status)
        if status["ok"]:
            for e, ref in zip(call.experts, call.refs[1:], strict=True):
                if job.items[e].state == "pending":
                    job.view_refs[e] = ref
                    self.expert_queues[e].append(job.video_id)
            return
        job.decode.attempts += 1
        kind = INPUT if status.get("input_error") else ERROR
        self._decide_decode(job, kind, status["error_class"], status["message"])

    def _decide_decode(self, job: VideoJob, kind: str, error_class: str, message: str) -> None:
        step = self.policy.decide(kind, job.decode.attempts, job.decode.crashes)
        if step == RETRY:
            self.acc.retries += kind != BYSTANDER
            self.decode_queue.append(job.video_id)
            return
        state = "quarantined" if step == QUARANTINE else "failed"
        for e, item in job.items.items():
            if item.state == "pending":
                self._settle(job, e, state, error_class, message, max(job.decode.attempts, 1))
        self._maybe_finish(job)

    def _on_expert(self, call: Call, status: dict[str, Any]) -> None:
        job = self.jobs.get(call.video_id)
        if job is None or self.current_token.get((call.video_id, call.expert)) != call.token:
            return
        e = call.expert
        self.acc.record_stage(e, status.get("seconds", 0.0), status.get("node_id"), status.get("pid"), status.get("cpu_s"))
        if self.balancer is not None:
            self.balancer.observe(e, status)
        item = job.items[e]
        if status["ok"]:
            item.state = "done"
            self._write(job.video_id, e, call.refs[1])
            return
        item.attempts += 1
        self._decide_expert(job, e, ERROR, status["error_class"], status["message"])

    def _decide_expert(self, job: VideoJob, e: str, kind: str, error_class: str, message: str) -> None:
        item = job.items[e]
        step = self.policy.decide(kind, item.attempts, item.crashes)
        if step == RETRY:
            self.acc.retries += kind != BYSTANDER
            self.expert_queues[e].append(job.video_id)
            return
        state = "quarantined" if step == QUARANTINE else "failed"
        self._settle(job, e, state, error_class, message, max(item.attempts, item.crashes, 1))
        self._maybe_finish(job)

    def _settle(self, job: VideoJob, expert: str, state: str, error_class: str, message: str, attempts: int) -> None:
        item = job.items[expert]
        item.state, item.error_class, item.message, item.attempts = state, error_class, message, attempts
        if state == "failed":
            self.driver_writer.fail(job.video_id, expert, error_class, message, attempts)
        else:
            self.driver_writer.quarantine(job.video_id, expert, f"{error_class}: {message}")
        self.failures.append({"video_id": job.video_id, "expert": expert, "state": state,
                              "error_class": error_class, "message": message, "attempts": attempts})

    def _write(self, video_id: str, expert: str, payload_ref: Any) -> None:
        slots = self.slots["writer"]
        slot = slots[zlib.crc32(video_id.encode()) % len(slots)]
        seq = next(self.seqs)
        self.uncommitted[slot.key][seq] = (video_id, expert, payload_ref)
        if slot.key in self.writer_dead:
            return  # resent once the writer is back
        ack = slot.handle.write.remote(seq, video_id, expert, payload_ref)
        self._track(Call("write", slot, video_id, expert, next(self.tokens), (ack,), (seq,)), ack)

    def _check_ack(self, ack: dict[str, Any]) -> None:
        """A writer that failed to commit says so in every reply: end the job with its one line."""
        if ack.get("store_error"):
            raise StoreWriteFailed(ack["store_error"])

    def _on_write(self, call: Call, ack: dict[str, Any]) -> None:
        self.acc.record_stage("write", ack.get("seconds", 0.0), ack.get("node_id"))
        self._committed(call.slot, ack.get("committed", []))
        self._check_ack(ack)
        job = self.jobs.get(call.video_id)
        if not ack.get("ok", True):  # the store refused the features: a failure of this expert
            for s in call.seqs:
                self.uncommitted[call.slot.key].pop(s, None)
            if job is not None and call.expert:
                self._settle(job, call.expert, "failed", ack["error_class"], ack["message"], 1)
                self._maybe_finish(job)
            return
        if job is not None and call.expert:
            job.written.add(call.expert)
            self._maybe_finish(job)

    def _committed(self, slot: Slot, seqs: list[int]) -> None:
        pending = self.uncommitted[slot.key]
        for s in seqs:
            pending.pop(s, None)

    def _resend(self, slot: Slot) -> None:
        for seq, (vid, expert, payload_ref) in sorted(self.uncommitted[slot.key].items()):
            if expert is None:  # text batch: (encoder in vid position)
                ack = slot.handle.write_text.remote(seq, vid, payload_ref)
                self._track(Call("text_write", slot, None, vid, next(self.tokens), (ack,), (seq,)), ack)
            else:
                ack = slot.handle.write.remote(seq, vid, expert, payload_ref)
                self._track(Call("write", slot, vid, expert, next(self.tokens), (ack,), (seq,)), ack)

    def _maybe_finish(self, job: VideoJob) -> None:
        if not job.finished():
            return
        outcome = job.outcome()
        assert job.video_id not in self.finished, f"video {job.video_id} settled twice"
        self.finished.add(job.video_id)
        self.outcomes[job.video_id] = outcome
        self.acc.record_outcome(outcome)
        self.jobs.pop(job.video_id, None)
        job.view_refs = {}
        for e in job.items:
            self.current_token.pop((job.video_id, e), None)
        self.current_token.pop((job.video_id, ""), None)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(done=self.acc.counts["done"], failed=self.acc.counts["failed"],
                                 quarantined=self.acc.counts["quarantined"], refresh=False)

    # ---------------------------------------------------------------- text stage
    def _dispatch_text(self) -> None:
        while self.text_queue:
            enc, items = self.text_queue[0]
            slot = self._free_slot(f"text:{enc}")
            if slot is None:
                return
            self.text_queue.popleft()
            token = next(self.tokens)
            status, payload = slot.handle.encode.options(num_returns=2).remote(items)
            self._track(Call("text", slot, None, enc, token, (status, payload), ()), status)
            self.text_inflight[token] = (enc, items, 0)

    def _on_text(self, call: Call, status: dict[str, Any]) -> None:
        enc, items, attempts = self.text_inflight.pop(call.token)
        self.acc.record_stage(f"text:{enc}", status.get("seconds", 0.0), status.get("node_id"))
        if not status["ok"]:
            if attempts < self.cfg.max_retries:
                self.text_queue.append((enc, items))
            else:
                self.text_failed += len(items)
                self.plan.notes.append(f"text encoder {enc} failed: {status['error_class']}: {status['message']}")
            return
        slot = self.slots["writer"][0]
        seq = next(self.seqs)
        self.uncommitted[slot.key][seq] = (enc, None, call.refs[1])
        ack = slot.handle.write_text.remote(seq, enc, call.refs[1])
        self._track(Call("text_write", slot, None, enc, next(self.tokens), (ack,), (seq,)), ack)
        self.text_done += len(items)

    def _on_text_write(self, call: Call, ack: dict[str, Any]) -> None:
        self._committed(call.slot, ack.get("committed", []))
        self._check_ack(ack)

    _on_flush = _on_text_write

    # ---------------------------------------------------------------- failures of actors
    def _actor_died(self, slot: Slot | None, exc: BaseException) -> None:
        """Attribute an actor death: the oldest outstanding call was running (crash), the rest queued."""
        import ray

        if slot is None:
            return
        self.acc.actor_crashes += 1
        ours = [(ref, c) for ref, c in self.calls.items() if c.slot is slot]
        ours.sort(key=lambda rc: slot.inflight.index(rc[1].token) if rc[1].token in slot.inflight else 1 << 30)
        blamed = False
        for ref, call in ours:
            if call.kind == "ping":
                self._untrack(ref)
                continue
            ready, _ = ray.wait([ref], timeout=0)
            if ready:
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError:
                    pass
                else:  # finished before the death: a normal result
                    self._untrack(ref)
                    getattr(self, f"_on_{call.kind}")(call, value)
                    continue
            self._untrack(ref)
            kind = BYSTANDER if blamed else CRASH
            blamed = True
            self._retry_after(call, kind, f"worker died: {first_line(exc, 300)}")
        slot.inflight.clear()
        if slot.stage == "writer":
            self.writer_dead.add(slot.key)
        self._probe(slot)

    def _retry_after(self, call: Call, kind: str, message: str) -> None:
        if call.kind == "decode":
            job = self.jobs.get(call.video_id)
            if job is None or self.current_token.get((call.video_id, "")) != call.token:
                return
            if kind == CRASH:
                job.decode.crashes += 1
            self._decide_decode(job, kind, "WorkerCrashed", message)
        elif call.kind == "expert":
            job = self.jobs.get(call.video_id)
            if job is None or self.current_token.get((call.video_id, call.expert)) != call.token:
                return
            if kind == CRASH:
                job.items[call.expert].crashes += 1
            elif kind == ERROR:  # not a worker death (e.g. its view was lost with a node): decode again
                job.items[call.expert].attempts += 1
                job.view_refs.pop(call.expert, None)
            self._decide_expert(job, call.expert, kind, "WorkerCrashed" if kind != ERROR else "ObjectLost", message)
        elif call.kind == "text":
            enc, items, attempts = self.text_inflight.pop(call.token, (call.expert, [], 0))
            if items:
                self.text_queue.append((enc, items))
        elif call.kind in ("write", "text_write", "flush") and call.slot is not None:
            if call.slot.key not in self.writer_dead:  # revived (and resent to) by a ping, never left dead
                self.writer_dead.add(call.slot.key)
                self._probe(call.slot)

    def _probe(self, slot: Slot) -> None:
        """Stop dispatching to ``slot`` until it answers a ping (Ray restarts it) or replace it."""
        slot.probing = True
        ref = slot.handle.ping.remote()
        self.calls[ref] = Call("ping", slot, token=0)
        self.probes[ref] = slot

    def _probe_failed(self, ref: Any) -> None:
        slot = self.probes.pop(ref)
        self.calls.pop(ref, None)
        if slot.replacements >= 3:
            raise UserError(f"the {slot.stage} workers keep dying (replaced {slot.replacements} times); giving up")
        slot.replacements += 1
        slot.handle = slot.make()
        self._probe(slot)

    # ---------------------------------------------------------------- main loop
    def _loop(self) -> None:
        import ray

        waiting = deque(sorted(self.todo))
        self.text_queue: deque[tuple[str, list[tuple[str, int, str]]]] = deque()
        self.text_inflight: dict[int, tuple[str, list[Any], int]] = {}
        self.text_done = self.text_failed = 0
        self.probes: dict[Any, Slot] = {}
        batch: dict[str, list[tuple[str, int, str]]] = {}
        for enc, vid, idx, text in self.text_todo:
            batch.setdefault(enc, []).append((vid, idx, text))
        for enc, items in batch.items():
            for i in range(0, len(items), 64):
                self.text_queue.append((enc, items[i:i + 64]))
        last_flush = time.monotonic()
        while True:
            if self.stop_requested:
                raise Interrupted()
            self._admit(waiting)
            self._dispatch()
            self._dispatch_text()
            if not self.calls and not waiting and not self.jobs and not self.text_queue:
                break
            if not self.calls:
                if self.jobs or waiting or self.text_queue:
                    time.sleep(0.05)
                    continue
            ready, _ = ray.wait(list(self.calls), num_returns=1, timeout=0.5)
            for ref in ready:
                if ref in self.probes:
                    try:
                        ray.get(ref)
                    except ray.exceptions.RayActorError:
                        self._probe_failed(ref)
                        continue
                    self.probes.pop(ref, None)
                self._handle(ref)
            if self.bar is not None:
                self.bar.refresh()
            if time.monotonic() - last_flush > self.cfg.commit_seconds:
                self._flush_writers(block=False)
                self.driver_writer.commit()  # StoreIOError (a UserError) ends the job with one line
                last_flush = time.monotonic()

    def _flush_writers(self, block: bool, timeout_s: float = 120) -> None:
        import ray

        for slot in self.slots.get("writer", []):
            if slot.key in self.writer_dead:
                continue
            ref = slot.handle.close.remote() if block else slot.handle.flush.remote()
            if block:
                try:
                    ack = ray.get(ref, timeout=timeout_s)
                except (ray.exceptions.RayError, TimeoutError) as exc:
                    self.plan.notes.append(f"writer {slot.key} did not close cleanly: {first_line(exc, 300)}")
                    continue
                self._committed(slot, ack.get("committed", []))
                self._check_ack(ack)
            else:
                self._track(Call("flush", slot, token=next(self.tokens)), ref)

    def _drain_writes(self, timeout_s: float = 60) -> None:
        """After a stop: wait for writes already sent, so their videos are committed by close()."""
        import ray

        deadline = time.monotonic() + timeout_s
        writes = [r for r, c in self.calls.items() if c.kind in ("write", "text_write", "flush")]
        while writes and time.monotonic() < deadline:
            ready, writes = ray.wait(writes, num_returns=len(writes), timeout=max(0.1, deadline - time.monotonic()))
            for ref in ready:
                self._handle(ref)

    def run(self) -> dict[str, Any]:
        from videxperts.pipelines.progress import progress_bar, startup_status

        cpu0 = time.process_time()
        self._open()
        interrupted = False
        self.bar = None
        tracker = None
        previous = self._install_signals()
        try:
            if self.cfg.tracking:
                from videxperts.pipelines.extract_tracking import ExtractionRun
                from videxperts.pipelines.provenance_links import annotate_extraction_run, extraction_run_name

                tracker = ExtractionRun(self.cfg.tracking_uri, self.cfg.experiment, self.cfg.out,
                                        self.cfg.run_name or extraction_run_name(self.plan, self.inputs))
                annotate_extraction_run(tracker, self.plan.profile)  # resolved profile, UI view
            from videxperts.pipelines.provenance_links import record_extraction_inputs

            record_extraction_inputs(self.cfg.out, self.inputs, tracker.run_id if tracker else None)  # splits for train
            t_start = time.monotonic()
            if self.todo or self.text_todo:
                startup_status(self, before=True)  # Ray up, N actors loading (minutes on a small machine)
                self._start_pools()
                startup_status(self, before=False)
            self.startup_s = time.monotonic() - t_start
            self.bar = progress_bar(self.acc.inputs, "extract", "video", enabled=self.cfg.progress,
                                    initial=self.acc.counts["skipped"])
            if tracker is not None:
                tracker.log_params(self._params())
            t_loop = time.monotonic()
            try:
                if self.todo or self.text_todo:
                    self._loop()
            except (Interrupted, KeyboardInterrupt):
                interrupted = True
                self._drain_writes()
            self._flush_writers(block=True)
            if self.slots.get("writer"):
                self._drain_writes()
            self.processing_s = time.monotonic() - t_loop
            self.driver_writer.close()
        except UserError as exc:  # a store that cannot take writes (or another fatal condition)
            self._fail_run(tracker, exc)
            raise
        finally:
            self._restore_signals(previous)
            if self.bar is not None:
                self.bar.close()
        if self.slots:
            from videxperts.pipelines.extract_balance import collect_cpu

            self.cpu_report = collect_cpu(self, time.process_time() - cpu0)
        summary = self._summary(interrupted)
        if self.balancer is not None and not interrupted:
            self.balancer.learn()
        if tracker is not None:
            unsent = tracker.finish(summary, self.failures, "KILLED" if interrupted else "FINISHED")
            summary["mlflow_run_id"] = tracker.run_id
            summary["tracking_uri"] = tracker.tracking_uri
            if unsent:  # the features are in the store; the run's record is kept beside it
                summary.update(unsent)
                print(f"videxperts: warning: MLflow at {tracker.tracking_uri} did not take run {tracker.run_id} "
                      f"({unsent['tracking_error']}); its summary and failure report are saved in "
                      f"{unsent['tracking_unsent']}", file=sys.stderr, flush=True)
        self._stop_actors()
        return summary

    def _fail_run(self, tracker: Any, exc: UserError) -> None:
        """End the actors and the MLflow run (FAILED) before the one-line error reaches the user."""
        self._stop_actors()
        if tracker is None:
            return
        try:
            summary = self._summary(interrupted=True) | {"error": first_line(exc, 600)}
            tracker.finish(summary, self.failures, "FAILED")
        except Exception:  # noqa: BLE001 - the store error is what the user must see
            pass

    def _count_committed_only(self) -> None:
        """After a stop or a store failure: count as settled only what the store has committed.

        A video is settled in the driver when its writes are acknowledged, which is before
        its commit; a job that ends early must not report those as done (nor captions whose
        batch never committed). The store's own records decide.
        """
        try:
            still = self.store.pending(list(self.finished), sorted(self.plan.experts))
            text_done = self._text_done()
        except Exception as exc:  # noqa: BLE001 - an unreadable store: say the counts are the driver's
            self.plan.notes.append(f"counts not checked against the store: {first_line(exc, 200)}")
            return
        for vid in [v for v in self.finished if v in still and self.outcomes.get(v) == "done"]:
            self.finished.discard(vid)
            self.acc.counts["done"] -= 1
        if self.text_todo:
            self.text_done = sum((enc, vid, idx) in text_done for enc, vid, idx, _ in self.text_todo)

    def _summary(self, interrupted: bool) -> dict[str, Any]:
        if interrupted and getattr(self, "store", None) is not None:
            self._count_committed_only()
        pending = len([v for v in self.todo if v not in self.finished])
        if not interrupted:
            assert pending == 0, f"{pending} videos were neither done, failed nor quarantined"
        extra = {
            "experts": sorted(self.plan.experts),
            "profile": self.plan.profile.get("name"),
            "decoder": self.backend,
            "workers": getattr(self, "workers", 0),
            "actors": {name: st.replicas for name, st in self.plan.stages.items()},
            "startup_s": round(getattr(self, "startup_s", 0.0), 3),
            "processing_s": round(getattr(self, "processing_s", 0.0), 3),
            "cluster": self.cluster,
            "failures": self.failures,
            "rejected": [{"path": p, "reason": why} for p, why in self.inputs.rejected],
            "notes": self.plan.notes,
        }
        if self.balancer is not None:
            extra["balance"] = self.balancer.report()
        if getattr(self, "cpu_report", None):
            extra["cpu_s"] = self.cpu_report
        if self.plan.text:
            extra["captions"] = {"encoders": sorted(self.plan.text), "todo": len(self.text_todo),
                                 "encoded": getattr(self, "text_done", 0), "failed": getattr(self, "text_failed", 0)}
        return self.acc.summary(pending=pending, interrupted=interrupted, store=self.cfg.out, extra=extra)

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {
            "input": self.cfg.input, "store": self.cfg.out, "experts": sorted(self.plan.experts),
            "profile": self.plan.profile.get("name"), "decoder": self.backend,
            "max_retries": self.cfg.max_retries, "workers": getattr(self, "workers", 0),
            "inputs": self.acc.inputs, "address": self.cfg.address or "local",
        }
        for name, p in self.plan.experts.items():
            params[f"{name}.backbone"] = p.provenance.get("backbone")
            params[f"{name}.weights"] = p.provenance.get("weights")
            params[f"{name}.version"] = p.provenance.get("extractor_version", p.version)
        for name, t in self.plan.text.items():
            params[f"text.{name}.weights"] = t.provenance.get("weights")
        params.update(self.cfg.extra_params)
        return params

    def _stop_actors(self) -> None:
        import ray

        for slots in self.slots.values():
            for s in slots:
                try:
                    ray.kill(s.handle, no_restart=True)
                except Exception:  # noqa: BLE001 - best effort at the end of the job
                    pass

    # ---------------------------------------------------------------- signals
    def _install_signals(self) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}

        def handler(signum: int, frame: Any) -> None:
            if self.stop_requested:  # second signal: stop hard
                raise KeyboardInterrupt
            self.stop_requested = True
            print(f"\nvidexperts: {signal.Signals(signum).name} received: finishing writes and stopping "
                  "(again to abort)", file=sys.stderr, flush=True)

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)
        return previous

    @staticmethod
    def _restore_signals(previous: dict[int, Any]) -> None:
        for sig, h in previous.items():
            signal.signal(sig, h)


def _check_unique(spec: str, videos: list[Any]) -> None:
    """Two inputs under one id would share (and overwrite) one store key: refuse, naming both."""
    first: dict[str, str] = {}
    for v in videos:
        if v.video_id in first:
            raise UserError(f"{spec}: duplicate video id {v.video_id!r} for {first[v.video_id]} and {v.path}")
        first[v.video_id] = v.path


def run_extract(cfg: ExtractConfig) -> dict[str, Any]:
    """Run one extraction job; returns the summary (see docs/EXTRACTION.md)."""
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    return Pipeline(cfg).run()
