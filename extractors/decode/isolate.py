"""Run a whole decode in a child process, so a deadlocked or crashing decoder cannot take the worker.

The probe already runs isolated; this goes further for untrusted corpora: the child streams
each window's views back through a pipe, and the parent waits at most ``timeout_s`` for each
one. On timeout the child is killed (DecodeTimeoutError); if it dies (segfault, abort) the
file is reported as CorruptVideoError. Typed errors raised in the child are re-raised here
with the same class, path and reason. The cost is one process start and one copy of the
frames through the pipe, so it is opt-in (``decode_windows(..., isolate=True)``).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator

from videxperts.extractors import base
from videxperts.extractors.base import CorruptVideoError, DecodeTimeoutError, MediaView, VideoInputError

_CTX = mp.get_context("spawn")  # no fork: the parent may hold threads and decoder state


def _child(conn, path: str, kwargs: dict) -> None:
    from videxperts.extractors.decode.reader import decode_windows

    try:
        for views in decode_windows(path, **kwargs):
            conn.send(("window", views))
        conn.send(("done", None))
    except VideoInputError as e:
        conn.send(("error", (type(e).__name__, e.path, e.reason)))
    except Exception as e:  # noqa: BLE001 - everything else is an unreadable file
        conn.send(("error", ("CorruptVideoError", path, f"{type(e).__name__}: {e}")))
    finally:
        conn.close()


def _error(name: str, path: str, reason: str) -> VideoInputError:
    cls = getattr(base, name, None)
    if cls is None:
        from videxperts.extractors.decode import probe as probe_mod

        cls = getattr(probe_mod, name, CorruptVideoError)
    return cls(path, reason)


def decode_windows_isolated(path: str | os.PathLike, timeout_s: float, **kwargs) -> Iterator[dict[str, MediaView]]:
    """``decode_windows`` in a child process; each window must arrive within ``timeout_s``."""
    p = os.fspath(path)
    parent, child = _CTX.Pipe(duplex=False)
    proc = _CTX.Process(target=_child, args=(child, p, {**kwargs, "timeout_s": timeout_s}), daemon=True)
    proc.start()
    child.close()
    try:
        while True:
            if not parent.poll(timeout_s):
                raise DecodeTimeoutError(p, f"no decoded window within {timeout_s:g} s (decoder killed)")
            try:
                kind, payload = parent.recv()
            except EOFError:
                proc.join(5)
                raise CorruptVideoError(p, f"decoder process died (exit code {proc.exitcode})") from None
            if kind == "window":
                yield payload
            elif kind == "error":
                raise _error(*payload)
            else:
                return
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        parent.close()
