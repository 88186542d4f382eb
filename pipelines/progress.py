"""Progress a person can read, in a terminal and in a log file.

On a terminal: a tqdm bar. Elsewhere (a log file, CI): one plain line per update at most every
``VIDEXPERTS_PROGRESS_SECONDS`` (default 30 s) plus the final one, never carriage returns, so
`make demo > log` holds lines, not 700 KB of bar redraws. :class:`EpochWatcher` drives a
training bar from the per-epoch metrics the Ray Train workers log to MLflow (it works the same
on a cluster, where the workers' stdout is elsewhere).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any, TextIO

PERIOD_ENV = "VIDEXPERTS_PROGRESS_SECONDS"


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class LineProgress:
    """A tqdm-like object writing one complete line per update, at most every ``period`` seconds."""

    def __init__(self, total: int | None, desc: str, unit: str, initial: int = 0, file: TextIO | None = None,
                 period: float | None = None) -> None:
        self.total, self.desc, self.unit, self.n = total, desc, unit, initial
        self.file = file or sys.stderr
        self.period = float(os.environ.get(PERIOD_ENV, "30")) if period is None else period
        self.postfix = ""
        self.start = time.monotonic()
        self._last = float("-inf")
        self._last_line = ""
        self.disable = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self._maybe_print()

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s
        if refresh:
            self._maybe_print()

    def set_postfix(self, refresh: bool = True, **kw: Any) -> None:
        self.postfix = ", ".join(f"{k}={v}" for k, v in kw.items())
        self._maybe_print()  # even with refresh=False: a line must carry the counts of its update

    def set_description(self, desc: str, refresh: bool = True) -> None:
        self.desc = desc

    def refresh(self) -> None:
        self._maybe_print()

    def _line(self) -> str:
        done = f"{self.n}/{self.total}" if self.total else str(self.n)
        elapsed = time.monotonic() - self.start
        rate = f", {self.n / elapsed:.2f} {self.unit}/s" if elapsed > 0 and self.n else ""
        return f"{self.desc}: {done} {self.unit}{rate}, {elapsed:.0f} s" + (f" ({self.postfix})" if self.postfix else "")

    def _maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= self.period:
            line = self._line()
            if line != self._last_line:
                print(line, file=self.file, flush=True)
                self._last_line = line
            self._last = now

    def close(self) -> None:
        self._maybe_print(force=True)

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Off:
    """Progress disabled: every call is a no-op."""

    n = 0
    disable = True

    def __getattr__(self, name: str) -> Any:
        return lambda *a, **k: None


def progress_bar(total: int | None, desc: str, unit: str, enabled: bool = True, initial: int = 0,
                 file: TextIO | None = None) -> Any:
    """A tqdm bar on a terminal, :class:`LineProgress` elsewhere, a no-op when disabled."""
    stream = file or sys.stderr
    if not enabled:
        return _Off()
    if is_terminal(stream):
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=unit, file=stream, dynamic_ncols=True)
    return LineProgress(total, desc, unit, initial=initial, file=stream)


def status(message: str, enabled: bool = True) -> None:
    """A start-up status line (``Ray up: 4 CPUs; loading 2 expert actors``) on stderr."""
    if enabled:
        print(f"videxperts: {message}", file=sys.stderr, flush=True)


class EpochWatcher:
    """A per-epoch training bar fed by polling the seed run's MLflow metrics (loss, validation metric)."""

    def __init__(self, client: Any, run_id: str, epochs: int, desc: str, val_metric: str | None,
                 enabled: bool = True, poll_s: float = 2.0) -> None:
        self.client, self.run_id, self.val_metric, self.poll_s = client, run_id, val_metric, poll_s
        self.bar = progress_bar(epochs, desc, "epoch", enabled)
        self.enabled = enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vx-epochs", daemon=True)

    def __enter__(self) -> EpochWatcher:
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.poll()
        self.bar.close()

    def _run(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - progress must never break training
                pass

    def poll(self) -> None:
        if not self.enabled:
            return
        loss = self.client.get_metric_history(self.run_id, "train/loss")
        if not loss:
            return
        parts = [f"loss {loss[-1].value:.4f}"]
        if self.val_metric:
            val = self.client.get_metric_history(self.run_id, self.val_metric)
            if val:
                parts.append(f"{self.val_metric} {val[-1].value:.2f}")
        done = max(m.step for m in loss)
        self.bar.set_postfix_str(", ".join(parts), refresh=False)  # the line printed by update carries it
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)


def ray_logs_dir() -> str | None:
    """Where this Ray session writes its workers' logs (None when unknown)."""
    try:
        import ray

        return ray._private.worker._global_node.get_logs_dir_path()  # noqa: SLF001 - no public accessor
    except Exception:  # noqa: BLE001 - only used in a hint
        return None


def startup_status(job: Any, before: bool) -> None:
    """The extraction's start-up lines: Ray's size and the actors loading models, then ready."""
    if not job.cfg.progress:
        return
    if before:
        c = job.cluster or {}
        n_exp = len({e for ex in job.todo.values() for e in ex})
        where = "" if job.cfg.verbose else f"; worker logs in {ray_logs_dir() or 'the Ray session dir'} (--verbose: here)"
        status(f"Ray up ({float(c.get('num_cpus') or 0):g} CPUs, {float(c.get('num_gpus') or 0):g} GPUs); loading {n_exp} expert "
               f"model(s) in their actors for {len(job.todo)} videos{where}")
    else:
        n = sum(len(s) for s in job.slots.values())
        status(f"{n} actors ready; extracting")


# Notices that ask nothing of the user, silenced by logger (never by message filters on stderr):
# MLflow announcing the creation/migration of the sqlite schema, and Ray announcing the token it
# generated for a loopback-only local cluster (remote clusters still get Ray's token errors).
QUIET_LOGGERS = {
    "mlflow.store.db.utils": "WARNING",
    "alembic.runtime.migration": "WARNING",
    "ray._private.authentication.authentication_token_setup": "ERROR",
    "ray._private.worker": "WARNING",  # "Started a local Ray instance." (train: the status line says it)
}


def quiet_known_notices() -> None:
    import logging

    for name, level in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(level)
