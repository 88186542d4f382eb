"""File-level access to a store root (local path or fsspec URL) for the non-Zarr parts.

Commit records, the HEAD pointer and seal markers are small files written with one atomic
operation each: ``os.replace`` of a temporary file on local disk, a single PUT on object
stores (which S3/GCS make visible all at once or not at all). Listings bypass fsspec's
directory cache because other processes add files all the time.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem
from zarr.abc.store import Store
from zarr.storage import FsspecStore, LocalStore


def _is_url(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def absolute_store_url(url: str) -> str:
    """A store location that means the same thing in another process with another working
    directory (Ray workers): local paths become absolute, fsspec URLs stay as they are."""
    url = str(url)
    if _is_url(url):
        return url
    return os.path.abspath(url[len("file://"):] if url.startswith("file://") else url)


@dataclass
class StoreRoot:
    """Where a store lives: the fsspec filesystem, the root path in it, and a Zarr store on it."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    read_only: bool = False

    def __post_init__(self) -> None:
        url = self.url[len("file://") :] if self.url.startswith("file://") else self.url
        if _is_url(url):
            self.fs, self.root = fsspec.core.url_to_fs(url, **self.storage_options)
            self.root = self.root.rstrip("/")
        else:
            self.fs = LocalFileSystem()
            self.root = os.path.abspath(url)
        self.local = isinstance(self.fs, LocalFileSystem)
        self._zarr: Store | None = None

    @property
    def zarr_store(self) -> Store:
        """The Zarr store for the root (created lazily; local disk uses zarr's atomic LocalStore)."""
        if self._zarr is None:
            if self.local:
                self._zarr = LocalStore(self.root, read_only=self.read_only)
            else:
                self._zarr = FsspecStore.from_url(
                    self.url, storage_options=self.storage_options or None, read_only=self.read_only
                )
        return self._zarr

    def path(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def exists(self, rel: str) -> bool:
        self._invalidate(rel)
        return bool(self.fs.exists(self.path(rel)))

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self.path(rel))

    def read_many(self, rels: list[str]) -> dict[str, bytes]:
        """Fetch many small files; async filesystems (s3fs, gcsfs) fetch them concurrently."""
        if not rels:
            return {}
        paths = [self.path(r) for r in rels]
        if self.local:
            out = {}
            for rel, p in zip(rels, paths, strict=True):
                with open(p, "rb") as f:
                    out[rel] = f.read()
            return out
        got = self.fs.cat(paths, on_error="raise")
        return {rel: got[p] for rel, p in zip(rels, paths, strict=True)}

    def put_atomic(self, rel: str, data: bytes) -> None:
        """Write a whole file so that readers see either nothing/the old file or all of it."""
        target = self.path(rel)
        if self.local:
            folder = os.path.dirname(target)
            if not os.path.isdir(folder) and self._publish_new_folder(folder, os.path.basename(target), data):
                return
            tmp = f"{target}.{uuid.uuid4().hex}.partial"
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                os.replace(tmp, target)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
        else:
            self.fs.pipe_file(target, data)  # one PUT: atomic on object stores
            self._invalidate(rel)

    @staticmethod
    def _publish_new_folder(folder: str, name: str, data: bytes) -> bool:
        """Create ``folder`` already holding ``name``: build it under a ``.partial`` sibling and
        rename it into place, so no other process ever sees the folder without its file (a
        concurrent registration would otherwise look like a damaged store). False when another
        process created the folder first; the caller then writes the file into it."""
        os.makedirs(os.path.dirname(folder), exist_ok=True)
        tmp_dir = f"{folder}.{uuid.uuid4().hex}.partial"
        os.mkdir(tmp_dir)
        try:
            with open(os.path.join(tmp_dir, name), "wb") as f:
                f.write(data)
            try:
                os.rename(tmp_dir, folder)
                return True
            except OSError:
                if os.path.isdir(folder):  # lost the race (EEXIST/ENOTEMPTY)
                    return False
                raise
        finally:
            if os.path.isdir(tmp_dir):
                for entry in os.listdir(tmp_dir):
                    os.unlink(os.path.join(tmp_dir, entry))
                os.rmdir(tmp_dir)

    def list_names(self, rel: str) -> list[str]:
        """Names (not paths) of the entries directly under ``rel``; empty if it does not exist."""
        self._invalidate(rel)
        try:
            entries = self.fs.ls(self.path(rel), detail=False)
        except FileNotFoundError:
            return []
        names = [e.rstrip("/").rsplit("/", 1)[-1] for e in entries]
        return sorted(n for n in names if n and ".partial" not in n)

    def remove(self, rel: str, recursive: bool = False) -> None:
        try:
            self.fs.rm(self.path(rel), recursive=recursive)
        except FileNotFoundError:
            pass
        self._invalidate(rel)

    def remove_many(self, rels: list[str]) -> None:
        if not rels:
            return
        if self.local:
            for r in rels:
                try:
                    os.unlink(self.path(r))
                except FileNotFoundError:
                    pass
        else:
            paths = [self.path(r) for r in rels]
            try:
                self.fs.rm(paths)  # one bulk request on object stores
            except FileNotFoundError:  # some already gone (an earlier interrupted cleanup)
                for p in paths:
                    try:
                        self.fs.rm_file(p)
                    except FileNotFoundError:
                        pass
        for r in {r.rsplit("/", 1)[0] for r in rels}:
            self._invalidate(r)

    def du(self) -> int:
        self._invalidate("")
        try:
            return int(self.fs.du(self.root, total=True))
        except FileNotFoundError:
            return 0

    def _invalidate(self, rel: str) -> None:
        if not self.local:
            self.fs.invalidate_cache(self.path(rel))
