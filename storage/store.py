"""The Zarr v3 feature store: lock-free concurrent writers, commit records, resume, compaction.

Layout (details and the reasoning in docs/STORE.md)::

    STORE/zarr.json                       root group, attrs {"videxperts_store": 1}
    STORE/experts/<name>/zarr.json        registry: dim, dtype, provenance, epoch
    STORE/text/<encoder>/zarr.json        registry of caption text encoders
    STORE/shards/<writer>.<token>/features/<expert>    [rows, dim] appendable, chunked on rows
    STORE/shards/<writer>.<token>/timestamps/<expert>  [rows] seconds
    STORE/shards/<writer>.<token>/text/<encoder>       [rows, dim] caption tokens
    STORE/shards/<writer>.<token>/sealed.json          written by close()
    STORE/commits/<writer>.<token>-<seq>.parquet        commit records (the commit points)
    STORE/base/<gen>/...                   compacted arrays + index.parquet + folded.parquet
    STORE/HEAD.json                        {"base": <gen> | null}: which compaction is current

A writer appends rows to arrays only it touches, then writes one immutable parquet record
(one atomic PUT / rename) naming the rows: that record is the commit point. Readers see only
rows named by records, so a writer killed at any instant exposes no partial video and loses
nothing committed. Later records supersede earlier ones per (video, expert).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import zarr
from zarr.codecs import BloscCodec
from zarr.errors import ArrayNotFoundError

from videxperts.errors import first_line
from videxperts.storage import _records as rec
from videxperts.storage._fs import StoreRoot
from videxperts.storage._gather import ChunkSource, gather_rows, segment_rows
from videxperts.storage._registry import (
    KIND_DIR,
    ProvenanceMismatchError,
    StoreDamaged,
    StoreError,
    StoreIOError,
    check_name,
    differences,
    group_json,
    io_error,
    make_entry,
)

if TYPE_CHECKING:
    from videxperts.storage.writer import StoreWriter

__all__ = ["FeatureStore", "StoreError", "StoreDamaged", "StoreIOError", "ProvenanceMismatchError"]

FORMAT_VERSION = 1
CHUNK_BYTES = 512 * 1024  # target uncompressed chunk size: small enough to limit read amplification
COPY_BYTES = 128 * 1024 * 1024  # rows copied per block by compact/verify
MODES = ("r", "a", "w", "w-")


def chunk_rows(dim: int, itemsize: int) -> int:
    """Rows per chunk so one chunk is about CHUNK_BYTES (a power of two in [16, 8192])."""
    rows = max(1, CHUNK_BYTES // max(1, dim * itemsize))
    return int(min(8192, max(16, 2 ** int(np.log2(rows)))))


def compressors() -> tuple[BloscCodec, ...]:
    """LZ4 with byte shuffle: cheap to decode, so reads stay I/O-bound."""
    return (BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),)


@dataclass
class Snapshot:
    """What a reader sees at one instant: the registry and the latest record per key."""

    registry: dict[tuple[str, str], dict[str, Any]]
    records: pd.DataFrame
    base: str | None
    commits: list[str]
    folded: set[str] = field(default_factory=set)
    bad_commits: dict[str, str] = field(default_factory=dict)
    raw_names: set[tuple[str, str]] = field(default_factory=set)
    bad_registry: dict[str, str] = field(default_factory=dict)


class FeatureStore:
    """A feature store at a local path or fsspec URL. Cheap to open; every query re-lists commits."""

    def __init__(self, root: StoreRoot, mode: str) -> None:
        self._root = root
        self.mode = mode
        self.url = root.url
        self._commit_cache: dict[str, pa.Table] = {}
        self._base_cache: dict[str, tuple[pa.Table, set[str]]] = {}
        self._arrays: dict[str, zarr.Array] = {}
        self._sources: dict[str, ChunkSource | None] = {}

    # ------------------------------------------------------------------ open / registry
    @classmethod
    def open(
        cls, url: str, mode: str = "a", storage_options: dict[str, Any] | None = None
    ) -> FeatureStore:
        """Open (``r``), open-or-create (``a``), create (``w-``) or wipe-and-create (``w``)."""
        if mode not in MODES:
            raise StoreError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        url = str(url)
        root = StoreRoot(url, dict(storage_options or {}), read_only=(mode == "r"))
        exists = root.exists("zarr.json")
        if exists:
            try:
                attrs = json.loads(root.read_bytes("zarr.json")).get("attributes", {})
            except (ValueError, OSError, AttributeError) as exc:
                raise StoreDamaged(f"zarr.json of the feature store {url} is unreadable "
                                   f"({first_line(exc, 120)}): run 'videxperts store repair {url}'") from exc
            if "videxperts_store" not in attrs:
                raise StoreError(f"{url} is a Zarr hierarchy but not a videxperts feature store")
        if not exists and mode in ("r", "a") and any(root.exists(d) for d in ("experts", "commits")):
            raise StoreDamaged(f"zarr.json of the feature store {url} is missing: "
                               f"run 'videxperts store repair {url}'")
        if mode == "r" and not exists:
            raise StoreError(f"no feature store at {url}")
        if mode == "w-" and exists:
            raise StoreError(f"a feature store already exists at {url}")
        try:
            if mode == "w" and root.exists(""):
                root.remove("", recursive=True)
                exists = False
            if not exists and mode != "r":
                for sub in ("experts", "text", "shards", "base"):
                    root.put_atomic(f"{sub}/zarr.json", group_json({}))
                root.put_atomic("zarr.json", group_json({"videxperts_store": FORMAT_VERSION}))
        except OSError as exc:
            raise io_error(url, "creating it", exc) from exc
        return cls(root, mode)

    def _require_writable(self) -> None:
        if self.mode == "r":
            raise StoreError(f"{self.url} was opened read-only (mode='r')")

    def _registry(self, bad: dict[str, str] | None = None) -> dict[tuple[str, str], dict[str, Any]]:
        """(kind, name) -> entry, tombstones included (``dropped`` true).

        An entry that is missing or does not parse raises ``StoreDamaged`` naming its file,
        unless ``bad`` is given (verify, repair): it then collects ``{file: reason}``.
        """
        rels = []
        for kind, sub in KIND_DIR.items():
            for name in self._root.list_names(sub):
                if name != "zarr.json":
                    rels.append((kind, name, f"{sub}/{name}/zarr.json"))
        try:
            docs = self._root.read_many([r for _, _, r in rels])
        except (OSError, ValueError):  # one of them is gone: read them one by one to name it
            docs = {}
            for _, _, rel in rels:
                try:
                    docs[rel] = self._root.read_bytes(rel)
                except (OSError, ValueError):
                    pass
        out = {}
        for kind, name, rel in rels:
            try:
                attrs = json.loads(docs[rel])["attributes"]
                if not attrs.get("dropped"):
                    attrs["dim"], attrs["dtype"], attrs["provenance"], attrs["epoch"]  # noqa: B018 - must exist
            except KeyError as exc:
                reason = "missing" if rel not in docs else f"lacks {exc}"
                self._damaged(rel, reason, bad)
                continue
            except (ValueError, TypeError) as exc:
                self._damaged(rel, f"does not parse ({first_line(exc, 120)})", bad)
                continue
            out[(kind, name)] = attrs
        return out

    def _damaged(self, rel: str, reason: str, bad: dict[str, str] | None) -> None:
        if bad is None:
            raise StoreDamaged(f"{rel} of the feature store {self.url} is damaged ({reason}): "
                               f"run 'videxperts store repair {self.url}'")
        bad[rel] = reason

    def _ensure(self, kind: str, name: str, dim: int, provenance: dict[str, Any]) -> dict[str, Any]:
        self._require_writable()
        check_name(name, "expert" if kind == "expert" else "text encoder")
        rel = f"{KIND_DIR[kind]}/{name}/zarr.json"
        old = None
        # The folder never exists without its zarr.json (both appear at once), so a folder seen after
        # a missing zarr.json is another process's registration landing in between: look again.
        for look in range(2):
            if self._root.exists(rel):
                try:
                    old = json.loads(self._root.read_bytes(rel))["attributes"]
                except (ValueError, KeyError, TypeError) as exc:
                    self._damaged(rel, f"does not parse ({first_line(exc, 120)})", None)
                break
            if not self._root.exists(f"{KIND_DIR[kind]}/{name}"):
                break
            if look == 1:  # the folder without its zarr.json, twice in a row
                self._damaged(rel, "missing", None)
        if old is not None and not old.get("dropped"):
            diffs = differences(old, dim, provenance)
            if diffs:
                what = "expert" if kind == "expert" else "text encoder"
                raise ProvenanceMismatchError(
                    f"{what} {name!r} in {self.url} was extracted differently ({'; '.join(diffs)}): "
                    f"write to a new store, or rerun with --overwrite-expert {name} "
                    f"(store.drop_expert({name!r})) to discard its features"
                )
            return old
        entry = make_entry(name, dim, provenance, drops=int(old["drops"]) + 1 if old else 0)
        try:
            self._root.put_atomic(rel, group_json(entry))
        except OSError as exc:
            raise io_error(self.url, f"registering {name!r}", exc) from exc
        return entry

    def ensure_expert(self, name: str, dim: int, provenance: dict[str, Any]) -> None:
        """Register an expert, or check it matches what the store already holds."""
        self._ensure("expert", name, dim, provenance)

    def ensure_text_encoder(self, name: str, dim: int, provenance: dict[str, Any]) -> None:
        """Register a caption text encoder (same rules as experts)."""
        self._ensure("text", name, dim, provenance)

    def _drop(self, kind: str, name: str) -> None:
        self._require_writable()
        rel = f"{KIND_DIR[kind]}/{name}/zarr.json"
        if not self._root.exists(rel):
            raise StoreError(f"no {kind} {name!r} in {self.url}")
        old = json.loads(self._root.read_bytes(rel))["attributes"]
        if old.get("dropped"):
            return
        self._root.put_atomic(rel, group_json({"dropped": True, "drops": int(old["drops"])}))

    def drop_expert(self, name: str) -> None:
        """Forget an expert's features and status (space is reclaimed by ``compact``)."""
        self._drop("expert", name)

    def drop_text_encoder(self, name: str) -> None:
        self._drop("text", name)

    def _live(self, kind: str) -> dict[str, dict[str, Any]]:
        return {
            n: {"dim": e["dim"], "dtype": e["dtype"], "provenance": e["provenance"]}
            for (k, n), e in sorted(self._registry().items())
            if k == kind and not e.get("dropped")
        }

    @property
    def experts(self) -> dict[str, dict[str, Any]]:
        """name -> {"dim", "dtype", "provenance"} for every registered expert."""
        return self._live("expert")

    @property
    def text_encoders(self) -> dict[str, dict[str, Any]]:
        return self._live("text")

    # ------------------------------------------------------------------ snapshot
    def _read_head(self) -> str | None:
        if not self._root.exists("HEAD.json"):
            return None
        try:
            base = json.loads(self._root.read_bytes("HEAD.json")).get("base")
        except (ValueError, OSError, AttributeError) as exc:
            self._damaged("HEAD.json", f"does not parse ({first_line(exc, 120)})", None)
        if base is not None and not isinstance(base, str):
            self._damaged("HEAD.json", f"names base {base!r}", None)
        return base

    def _base(self, gen: str) -> tuple[pa.Table, set[str]]:
        if gen not in self._base_cache:
            try:
                got = self._root.read_many([f"base/{gen}/index.parquet", f"base/{gen}/folded.parquet"])
                index = rec.from_parquet_bytes(got[f"base/{gen}/index.parquet"])
                folded = set(rec.pq.read_table(rec.io.BytesIO(got[f"base/{gen}/folded.parquet"]))["name"].to_pylist())
            except Exception as exc:  # noqa: BLE001 - missing or undecodable: damage to name
                self._damaged(f"base/{gen}", f"its index is unreadable ({first_line(exc, 120)})", None)
            self._base_cache[gen] = (index, folded)
        return self._base_cache[gen]

    def snapshot(self, strict: bool = True) -> Snapshot:
        """Registry + latest record per key, reading only commit files not seen before."""
        bad_registry: dict[str, str] = {}
        registry = self._registry(None if strict else bad_registry)
        base = self._read_head()
        tables: list[pa.Table] = []
        folded: set[str] = set()
        if base is not None:
            index, folded = self._base(base)
            tables.append(index)
        names = [n for n in self._root.list_names("commits") if n.endswith(".parquet") and n not in folded]
        new = [n for n in names if n not in self._commit_cache]
        bad: dict[str, str] = {}
        if new:
            got = self._root.read_many([f"commits/{n}" for n in new])
            for n in new:
                try:
                    self._commit_cache[n] = rec.from_parquet_bytes(got[f"commits/{n}"])
                except Exception as exc:  # noqa: BLE001 - any decode failure is damage to report
                    if strict:
                        raise StoreDamaged(f"commit record commits/{n} of the feature store {self.url} is "
                                           f"unreadable ({first_line(exc, 120)}): run "
                                           f"'videxperts store repair {self.url}'") from exc
                    bad[n] = first_line(exc, 200)
        tables.extend(self._commit_cache[n] for n in names if n in self._commit_cache)
        raw_names: set[tuple[str, str]] = set()
        for t in tables if not strict else []:  # only verify needs the names of every record
            if t.num_rows:
                pairs = t.select(["kind", "name"]).group_by(["kind", "name"]).aggregate([])
                raw_names.update(zip(pairs["kind"].to_pylist(), pairs["name"].to_pylist(), strict=True))
        epochs = {k: e["epoch"] for k, e in registry.items() if not e.get("dropped")}
        return Snapshot(registry, rec.latest(tables, epochs), base, names, folded, bad, raw_names, bad_registry)

    # ------------------------------------------------------------------ writing
    def writer(self, writer_id: str) -> StoreWriter:
        """A writer with its own shard; one per worker process (ids need not be unique)."""
        self._require_writable()
        check_name(writer_id, "writer")
        from videxperts.storage.writer import StoreWriter

        return StoreWriter(self, writer_id)

    def _array(self, path: str, need_rows: int = 0) -> zarr.Array:
        """Open an array read-only, cached; reopened when a live shard has grown past the cache."""
        arr = self._arrays.get(path)
        if arr is None or arr.shape[0] < need_rows:
            try:
                arr = zarr.open_array(store=self._root.zarr_store, path=path, mode="r")
            except (ArrayNotFoundError, FileNotFoundError, KeyError, ValueError) as exc:
                raise StoreDamaged(f"array {path} of the feature store {self.url} is missing or unreadable "
                                   f"({first_line(exc, 120)}): the store is damaged (run 'videxperts store "
                                   f"verify {self.url}'), or it was compacted while reading (reopen it)") from exc
            self._arrays[path] = arr
        if arr.shape[0] < need_rows:
            raise StoreError(f"array {path} of {self.url} has {arr.shape[0]} rows, records need {need_rows}")
        return arr

    def _reader(self, path: str, need_rows: int = 0) -> tuple[zarr.Array, ChunkSource | None]:
        """The array and, when its layout allows, a direct chunk source for fast gathers."""
        arr = self._array(path, need_rows)
        src = self._sources.get(path)
        if src is None or src.arr is not arr:
            src = ChunkSource.for_array(arr, self._root, path)
            self._sources[path] = src
        return arr, src

    def _create_array(self, path: str, shape: tuple[int, ...], dtype: str, chunks: tuple[int, ...]) -> zarr.Array:
        return zarr.create_array(
            store=self._root.zarr_store,
            name=path,
            shape=shape,
            chunks=chunks,
            dtype=dtype,
            compressors=compressors(),
            fill_value=0,
            overwrite=True,
        )

    # ------------------------------------------------------------------ queries
    def status_table(self) -> pa.Table:
        """One row per (video, expert) with a record: state, error, attempts, version, rows."""
        df = self.snapshot().records
        df = df[df["kind"] == "expert"]
        out = pd.DataFrame(
            {
                "video_id": df["video_id"].astype(str),
                "expert": df["name"].astype(str),
                "state": df["state"].astype(str),
                "error_class": df["error_class"],
                "message": df["message"],
                "attempts": df["attempts"].astype("int32"),
                "extractor_version": df["extractor_version"],
                "rows": df["row_count"].astype("int64"),
                "committed_at": pd.to_datetime(df["commit_ts"].astype("int64"), unit="ns", utc=True),
                "writer_id": df["writer_id"],
            }
        ).sort_values(["video_id", "expert"], kind="stable")
        return pa.Table.from_pandas(out, preserve_index=False)

    def pending(self, video_ids: list[str], experts: list[str]) -> dict[str, list[str]]:
        """video_id -> experts still to extract (not done at the current version, not quarantined).

        Videos with nothing left are omitted. Failed pairs are pending (a retry); the
        caller caps attempts using ``status_table``.
        """
        video_ids = [str(v) for v in video_ids]
        experts = list(experts)
        if not video_ids or not experts:
            return {}
        snap = self.snapshot()
        df = snap.records
        df = df[(df["kind"] == "expert") & df["name"].isin(experts)]
        versions = {
            n: e["provenance"].get("extractor_version")
            for (k, n), e in snap.registry.items()
            if k == "expert" and not e.get("dropped")
        }
        current = df["name"].map(versions).astype(object)
        skip = (df["state"] == "quarantined") | (
            (df["state"] == "done") & (df["extractor_version"].astype(object) == current)
        )
        df = df[skip.to_numpy(dtype=bool)]
        vid_index = pd.Index(video_ids)
        vpos = vid_index.get_indexer(df["video_id"])
        epos = pd.Index(experts).get_indexer(df["name"])
        keep = vpos >= 0
        todo = np.ones((len(video_ids), len(experts)), dtype=bool)
        todo[vpos[keep], epos[keep]] = False
        out: dict[str, list[str]] = {}
        any_todo = todo.any(axis=1)
        all_todo = todo.all(axis=1)
        ex_arr = np.asarray(experts, dtype=object)
        for i in np.flatnonzero(any_todo):
            out[video_ids[i]] = list(experts) if all_todo[i] else ex_arr[todo[i]].tolist()
        return out

    def info(self) -> dict[str, Any]:
        """Summary for `videxperts store info`: experts, counts, reasons, provenance, size."""
        snap = self.snapshot()
        df = snap.records
        ex = df[df["kind"] == "expert"]
        experts: dict[str, Any] = {}
        for (kind, name), e in sorted(snap.registry.items()):
            if kind != "expert" or e.get("dropped"):
                continue
            sub = ex[ex["name"] == name]
            counts = Counter(sub["state"].astype(str))
            experts[name] = {
                "dim": e["dim"],
                "dtype": e["dtype"],
                "done": counts.get("done", 0),
                "failed": counts.get("failed", 0),
                "quarantined": counts.get("quarantined", 0),
                "empty": int(((sub["state"] == "done") & (sub["row_count"] == 0)).sum()),
                "rows": int(sub.loc[sub["state"] == "done", "row_count"].sum()),
                "failure_reasons": _reasons(sub[sub["state"] == "failed"]),
                "quarantine_reasons": _reasons(sub[sub["state"] == "quarantined"]),
                "provenance": e["provenance"],
            }
        text = {}
        tx = df[df["kind"] == "text"]
        for (kind, name), e in sorted(snap.registry.items()):
            if kind != "text" or e.get("dropped"):
                continue
            sub = tx[(tx["name"] == name) & (tx["state"] == "done")]
            text[name] = {
                "dim": e["dim"],
                "dtype": e["dtype"],
                "captions": len(sub),
                "videos": int(sub["video_id"].nunique()),
                "tokens": int(sub["row_count"].sum()),
                "provenance": e["provenance"],
            }
        from videxperts.storage.failures import failure_groups

        shards = [n for n in self._root.list_names("shards") if n != "zarr.json"]
        return {
            "url": self.url,
            "videos": int(df["video_id"].nunique()),
            "experts": experts,
            "text_encoders": text,
            "failures": failure_groups(df),  # by (state, error class, expert), with examples
            "commits_pending_compaction": len(snap.commits),
            "shards": len(shards),
            "base": snap.base,
            "size_bytes": self._root.du(),
        }

    # ------------------------------------------------------------------ verify
    def verify(self) -> list[str]:
        """Check records against arrays, dims, and values; returns problems (empty = healthy)."""
        return [d.text() for d in self.verify_report()]

    def verify_report(self) -> list[Damage]:
        """Every damaged object with the (video, expert) pairs it affects; never raises for damage."""
        try:
            snap = self.snapshot(strict=False)
        except StoreError as exc:  # HEAD.json or the current base: nothing below can be trusted
            obj = str(exc).split(" of the feature store", 1)[0]
            return [Damage(obj, str(exc))]
        problems = [Damage(f"commits/{n}", f"commit record is unreadable ({msg}); the videos it committed are "
                           "unknown until it is moved aside (store repair) and they are extracted again")
                    for n, msg in snap.bad_commits.items()]
        problems += [Damage(rel, f"registry entry is {why}; the records of "
                            f"{rel.split('/')[0].rstrip('s')} {rel.split('/')[1]!r} are hidden until it is "
                            "registered again (store repair, then extract)",
                            "expert" if rel.startswith("experts/") else "text", rel.split("/")[1])
                     for rel, why in snap.bad_registry.items()]
        damaged_names = {(d.kind, d.name) for d in problems if d.kind}
        known = set(snap.registry)
        for kind, name in sorted(snap.raw_names - known - damaged_names):
            problems.append(Damage(f"{KIND_DIR[kind]}/{name}", f"records for unregistered {kind} {name!r}"))
        df = snap.records
        bad_state = df[~df["state"].isin(rec.STATES)]
        for state, n in Counter(bad_state["state"].astype(str)).items():
            problems.append(Damage("commits", f"{n} records with unknown state {state!r}"))
        done = df[(df["state"] == "done") & (df["row_count"] > 0)]
        for (kind, name, source), grp in done.groupby(["kind", "name", "source"], sort=True):
            entry = snap.registry.get((kind, name), {})
            try:
                problems += self._verify_group(kind, name, str(source), grp, entry)
            except Exception as exc:  # noqa: BLE001 - a failure not foreseen above is still a report
                problems.append(Damage(f"{source}/{'features' if kind == 'expert' else 'text'}/{name}",
                                       f"cannot be checked ({type(exc).__name__}: {first_line(exc, 200)})",
                                       kind, name, sorted(grp["video_id"].astype(str))))
        return problems

    def _verify_group(self, kind: str, name: str, source: str, grp: pd.DataFrame,
                      entry: dict[str, Any]) -> list[Damage]:
        problems: list[Damage] = []
        label = f"{'expert' if kind == 'expert' else 'text encoder'} {name!r}"

        def hurt(obj: str, what: str, videos: Any) -> None:
            problems.append(Damage(obj, f"{label}: {what}", kind, name, sorted(set(map(str, videos)))))

        fpath = f"{source}/{'features' if kind == 'expert' else 'text'}/{name}"
        try:
            arr = zarr.open_array(store=self._root.zarr_store, path=fpath, mode="r")
        except Exception as exc:  # noqa: BLE001 - missing, or metadata that does not parse
            hurt(fpath, f"array is missing or unreadable ({first_line(exc, 120)})", grp["video_id"])
            return problems
        if arr.ndim != 2 or arr.shape[1] != entry.get("dim"):
            hurt(fpath, f"array has shape {arr.shape}, registry says dim {entry.get('dim')}", grp["video_id"])
            return problems
        ends = (grp["row_start"] + grp["row_count"]).to_numpy()
        over = grp[ends > arr.shape[0]]
        if len(over):
            hurt(fpath, f"records index rows past the end ({arr.shape[0]} rows)", over["video_id"])
            grp = grp[ends <= arr.shape[0]]
            ends = ends[ends <= arr.shape[0]]
        ts = tpath = None
        if kind == "expert":
            tpath = f"{source}/timestamps/{name}"
            try:
                ts = zarr.open_array(store=self._root.zarr_store, path=tpath, mode="r")
                need = int(ends.max(initial=0))  # uncommitted rows past the end may differ: ignore
                if ts.shape[0] < need:
                    hurt(tpath, f"has {ts.shape[0]} rows, records index up to {need}",
                         grp["video_id"][ends > ts.shape[0]])
                    ts = None
            except Exception as exc:  # noqa: BLE001
                hurt(tpath, f"timestamps array is missing or unreadable ({first_line(exc, 120)})", grp["video_id"])
                ts = None
        starts = grp["row_start"].to_numpy()
        counts = grp["row_count"].to_numpy()
        vids = grp["video_id"].astype(str).to_numpy()
        bad_chunks: dict[str, list[str]] = {}
        for a, path in ((arr, fpath), (ts, tpath)):
            if a is not None:
                for key, hit in _damaged_chunks(a, self._root, path, starts, counts).items():
                    bad_chunks[key] = vids[hit].tolist()
        for key, videos in sorted(bad_chunks.items()):
            hurt(key, "chunk is unreadable (truncated or corrupt)", videos)
        skip = {v for videos in bad_chunks.values() for v in videos}
        keep = np.array([v not in skip for v in vids], dtype=bool)
        starts, counts, vids = starts[keep], counts[keep], vids[keep]
        bad_videos: list[str] = []
        per_block = max(1, COPY_BYTES // max(1, arr.shape[1] * arr.dtype.itemsize))
        cum = np.cumsum(counts)
        lo = 0
        while lo < len(vids):
            hi = max(lo + 1, int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + per_block, side="right")))
            rows = segment_rows(starts[lo:hi], counts[lo:hi])
            finite = np.isfinite(gather_rows(arr, rows, source=ChunkSource.for_array(arr, self._root, fpath)))
            finite = finite.all(axis=1)
            if ts is not None:
                finite &= np.isfinite(gather_rows(ts, rows, source=ChunkSource.for_array(ts, self._root, tpath)))
            offs = np.cumsum(counts[lo:hi]) - counts[lo:hi]
            ok = np.logical_and.reduceat(finite, offs)
            bad_videos += vids[lo:hi][~ok].tolist()
            lo = hi
        if bad_videos:
            hurt(fpath, "non-finite values (NaN/inf)", bad_videos)
        return problems

    # ------------------------------------------------------------------ compact
    def compact(self, prune_unsealed: bool = False) -> dict[str, Any]:
        """Merge every committed row into one new base, switch HEAD to it, then delete the old.

        Crash-safe: the new base is complete before the one-PUT switch of HEAD.json, and
        nothing is removed before the switch. Shards of writers that are still running are
        kept; shards of killed (never sealed) writers are removed only with
        ``prune_unsealed`` (use it when no writer is running). Do not run two compactions
        at once.
        """
        self._require_writable()
        snap = self.snapshot()
        gen = f"{time.time_ns():020d}-{uuid.uuid4().hex[:6]}"
        source = f"base/{gen}"
        df = snap.records.copy()
        df = df.sort_values(["kind", "name", "video_id", "caption_idx"], kind="stable").reset_index(drop=True)
        has_rows = (df["state"] == "done") & (df["row_count"] > 0)
        df.loc[~has_rows, ["source"]] = None
        df.loc[~has_rows, ["row_start", "row_count"]] = 0
        copied = 0
        for (kind, name), idx in df[has_rows].groupby(["kind", "name"], sort=True).groups.items():
            entry = snap.registry[(kind, name)]
            part = df.loc[idx]
            new_start = np.cumsum(part["row_count"].to_numpy()) - part["row_count"].to_numpy()
            self._copy_rows(kind, name, entry, part, source)
            df.loc[idx, "row_start"] = new_start
            df.loc[idx, "source"] = source
            copied += int(part["row_count"].sum())
        index = pa.Table.from_pandas(df[[f.name for f in rec.SCHEMA]], schema=rec.SCHEMA, preserve_index=False)
        folded = sorted(set(snap.commits) | snap.folded)
        self._root.put_atomic(f"{source}/index.parquet", rec.to_parquet_bytes(index))
        self._root.put_atomic(f"{source}/folded.parquet", _names_parquet(folded))
        self._root.put_atomic("HEAD.json", json.dumps({"base": gen}).encode())  # the switch
        # ---- after the switch: remove what the new base replaced
        self._root.remove_many([f"commits/{n}" for n in folded])
        for old in self._root.list_names("base"):
            if old not in ("zarr.json", gen):
                self._root.remove(f"base/{old}", recursive=True)
        shards = [n for n in self._root.list_names("shards") if n != "zarr.json"]
        # seal markers first, commit listing second: a writer writes its last record before
        # its seal, so any record of a shard seen sealed here is in the listing below
        sealed = {n for n in shards if self._root.exists(f"shards/{n}/sealed.json")}
        remaining = {n.rsplit("-", 1)[0] for n in self._root.list_names("commits")}
        removed_shards = 0
        for shard in shards:
            if shard not in remaining and (shard in sealed or prune_unsealed):
                self._root.remove(f"shards/{shard}", recursive=True)
                removed_shards += 1
        self._commit_cache = {k: v for k, v in self._commit_cache.items() if k not in set(folded)}
        self._arrays.clear()
        self._sources.clear()
        return {"base": gen, "records": len(df), "rows": copied, "commits_folded": len(folded),
                "shards_removed": removed_shards}

    def _copy_rows(self, kind: str, name: str, entry: dict[str, Any], part: pd.DataFrame, dest: str) -> None:
        """Copy the rows of ``part`` (in order) into new arrays under ``dest`` block by block."""
        dim, dtype = int(entry["dim"]), entry["dtype"]
        total = int(part["row_count"].sum())
        crows = chunk_rows(dim, np.dtype(dtype).itemsize)
        fdir = "features" if kind == "expert" else "text"
        out = self._create_array(f"{dest}/{fdir}/{name}", (total, dim), dtype, (crows, dim))
        tout = (
            self._create_array(f"{dest}/timestamps/{name}", (total,), "float32", (max(crows, 4096),))
            if kind == "expert"
            else None
        )
        counts = part["row_count"].to_numpy()
        starts = part["row_start"].to_numpy()
        sources = part["source"].astype(str).to_numpy()
        # blocks of whole chunks of the destination, so each destination chunk is written once
        per_block = max(crows, (COPY_BYTES // (dim * np.dtype(dtype).itemsize)) // crows * crows)
        cum = np.cumsum(counts)
        dst_lo, lo = 0, 0
        pending_f: list[np.ndarray] = []
        pending_t: list[np.ndarray] = []
        pend_rows = 0
        while lo < len(part):
            hi = max(lo + 1, int(np.searchsorted(cum, (cum[lo - 1] if lo else 0) + per_block, side="right")))
            feats = np.empty((int(counts[lo:hi].sum()), dim), dtype=dtype)
            times = np.empty(len(feats), dtype="float32") if tout is not None else None
            offs = np.cumsum(counts[lo:hi]) - counts[lo:hi]
            for src in np.unique(sources[lo:hi]):
                sel = np.flatnonzero(sources[lo:hi] == src)
                dst_rows = segment_rows(offs[sel], counts[lo:hi][sel])
                src_rows = segment_rows(starts[lo:hi][sel], counts[lo:hi][sel])
                need = int(src_rows.max()) + 1
                farr, fsrc = self._reader(f"{src}/{fdir}/{name}", need)
                gather_rows(farr, src_rows, feats, dst_rows, fsrc)
                if times is not None:
                    tarr, tsrc = self._reader(f"{src}/timestamps/{name}", need)
                    gather_rows(tarr, src_rows, times, dst_rows, tsrc)
            pending_f.append(feats)
            if times is not None:
                pending_t.append(times)
            pend_rows += len(feats)
            lo = hi
            # flush whole destination chunks; keep the remainder for the next block
            flush = pend_rows if lo >= len(part) else (pend_rows // crows) * crows
            if flush:
                f_all = np.concatenate(pending_f)
                out[dst_lo : dst_lo + flush] = f_all[:flush]
                pending_f = [f_all[flush:]]
                if tout is not None:
                    t_all = np.concatenate(pending_t)
                    tout[dst_lo : dst_lo + flush] = t_all[:flush]
                    pending_t = [t_all[flush:]]
                dst_lo += flush
                pend_rows -= flush


@dataclass
class Damage:
    """One damaged object of a store (a file, an array, a chunk) and the pairs it affects."""

    object: str  # path inside the store
    problem: str
    kind: str | None = None  # "expert" | "text" when the affected pairs are known
    name: str | None = None
    videos: list[str] = field(default_factory=list)

    def text(self) -> str:
        where = f"{self.object}: {self.problem}"
        if not self.videos:
            return where
        shown = ", ".join(self.videos[:5]) + (", ..." if len(self.videos) > 5 else "")
        return f"{where} ({len(self.videos)} videos affected: {shown})"

    def to_dict(self) -> dict[str, Any]:
        return {"object": self.object, "problem": self.problem, "kind": self.kind, "name": self.name,
                "videos": self.videos}


def _damaged_chunks(arr: zarr.Array, root: StoreRoot, path: str, starts: np.ndarray,
                    counts: np.ndarray) -> dict[str, np.ndarray]:
    """Chunk key -> boolean mask of the segments whose rows touch that unreadable chunk.

    Reads each touched chunk once on its own, so one bad chunk is named exactly and the
    others still get checked; a healthy array costs one extra decode per chunk.
    """
    chunk = int(arr.chunks[0])
    if not len(starts):
        return {}
    first = starts // chunk
    last = (starts + np.maximum(counts, 1) - 1) // chunk
    touched = np.unique(np.concatenate([np.arange(a, b + 1) for a, b in zip(first, last, strict=True)]))
    src = ChunkSource.for_array(arr, root, path)
    out: dict[str, np.ndarray] = {}
    for cid in touched.tolist():
        try:
            if src is not None:
                src.read(np.array([cid]))
            else:
                arr[cid * chunk:(cid + 1) * chunk]
        except Exception:  # noqa: BLE001 - any decode failure is damage of this chunk
            key = f"{path}/c/{cid}" + "/0" * (arr.ndim - 1) if src is None else src._key(cid)
            out[key] = (first <= cid) & (last >= cid)
    return out


def _names_parquet(names: list[str]) -> bytes:
    sink = rec.io.BytesIO()
    rec.pq.write_table(pa.table({"name": pa.array(names, pa.string())}), sink)
    return sink.getvalue()


def _reasons(sub: pd.DataFrame, limit: int = 10) -> list[dict[str, Any]]:
    """Failures grouped by (error_class, message): count and a few example videos."""
    if sub.empty:
        return []
    keys = sub["error_class"].fillna("").astype(str) + "\x00" + sub["message"].fillna("").astype(str)
    out = []
    for key, grp in sub.groupby(keys, sort=False):
        cls, msg = str(key).split("\x00", 1)
        out.append(
            {"error_class": cls or None, "message": msg, "count": len(grp),
             "videos": grp["video_id"].astype(str).head(5).tolist()}
        )
    out.sort(key=lambda r: -r["count"])
    return out[:limit]
