"""Move an index between the embedded engine, a Qdrant server and a portable folder, without re-encoding.

Points live in one of three places, and every move is the same streamed copy between two of them:

- an index folder whose points are in its embedded shard (`store/`, qdrant-edge-py);
- an index folder whose manifest names a collection on a Qdrant server (`config.store.url`);
- a bundle, a portable folder that moves between machines:

      bundle/
        bundle.json       format, version, point count, the parts with their sha256
        manifest.json     the source index's manifest as it was (it holds no secrets)
        files.sqlite      the file table (what lets incremental indexing skip unchanged files)
        points-00000.npz  one part per page: ids, a float32 matrix and a presence mask per dense
                          space, the BM25 vectors as CSR arrays, payloads as zlib'd JSON; no pickles

The copy pages through the source in point-id order (scroll with vectors and payloads) and upserts
each page. Point ids are stable UUIDs, so writing a page twice leaves one copy. After each page the
offset of the next one goes to `.transfer.json` in the destination, so an interrupted copy run again
goes on where it stopped. The destination's manifest is written last: a folder with a manifest is a
complete index that `Pipeline.load` opens. Then the point counts must agree and a random sample of
points must come back from the destination with the same vectors and payloads.
"""

from __future__ import annotations

import copy
import json
import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.index.folder import MANIFEST, IndexLock, read_manifest, write_json_atomic
from mmrag.index.progress import progress_bar
from mmrag.store.base import PointData, SparseVec, Store, StoreSchema
from mmrag.store.bundle import (
    BUNDLE,
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    BundleEnd,
    StoreEnd,
    read_bundle,
)
from mmrag.store.edge import EdgeStore
from mmrag.store.server import ClientStore, ServerOptions
from mmrag.types import MMRAGError

CHECKPOINT = ".transfer.json"
FILES = "files.sqlite"
DEFAULT_BATCH = 1024
# Points compared vector by vector after a copy (a reservoir sample over the whole copy).
VERIFY_SAMPLE = 64


@dataclass
class TransferReport:
    """What one export or import did."""

    source: str
    dest: str
    points: int = 0
    """Points in the destination when the copy finished (equal to the source's count)."""
    copied: int = 0
    """Points this run copied."""
    resumed_at: int = 0
    """Points an earlier, interrupted run had copied already."""
    verified: int = 0
    """Sampled points read back from the destination and compared with the source."""
    seconds: float = 0.0
    """Time spent copying points (opening, verification and the HNSW build not included)."""
    optimize_seconds: float = 0.0
    """Time the embedded destination spent building its HNSW graphs."""

    @property
    def points_per_s(self) -> float:
        return self.copied / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "points_per_s": round(self.points_per_s, 1)}


def is_url(target: str) -> bool:
    """Whether `target` names a Qdrant server (or qdrant-client local mode) rather than a folder."""
    return "://" in target or target == ":memory:" or target.startswith("local:")


def _prepare(dest: Path, source: str, target: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of the copy of `source` into `dest`: an interrupted one's, or a new one."""
    path = dest / CHECKPOINT
    if path.exists():
        try:
            ckpt: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MMRAGError(
                f"{path}: unreadable copy checkpoint ({e}); delete {dest} and start again"
            ) from e
        if ckpt.get("source") != source or ckpt.get("target") != target:
            raise MMRAGError(
                f"{dest} holds an interrupted copy of {ckpt.get('source')} to {ckpt.get('target')}, "
                f"not of {source} to {target}; choose another folder or delete it"
            )
        return ckpt
    if (dest / MANIFEST).exists() or (dest / BUNDLE).exists():
        raise MMRAGError(f"{dest} already holds a complete index or bundle; choose a new folder")
    if dest.exists() and any(p.name != ".lock" for p in dest.iterdir()):
        raise MMRAGError(f"{dest} is not empty; choose a new or empty folder")
    dest.mkdir(parents=True, exist_ok=True)
    ckpt = {"source": source, "target": target, "offset": None, "copied": 0, "done": False, "parts": []}
    write_json_atomic(path, ckpt)
    return ckpt


def _copy(
    src: StoreEnd | BundleEnd,
    dst: StoreEnd | BundleEnd,
    dest: Path,
    ckpt: dict[str, Any],
    report: TransferReport,
    opts: dict[str, Any],
) -> None:
    """Stream every page of `src` into `dst`, checkpointing after each; then check counts and a sample."""
    total, verify = src.count(), int(opts.get("verify", VERIFY_SAMPLE))
    report.resumed_at = int(ckpt["copied"])
    sample: list[PointData] = []
    rng, seen = random.Random(0), 0
    on_page: Callable[[int], None] | None = opts.get("on_page")
    t0 = time.perf_counter()
    with progress_bar(
        bool(opts.get("progress")), total, "copying[/] points", report.resumed_at, f"into {dest.name}"[-60:]
    ) as advance:
        if not ckpt["done"]:
            for points, nxt in src.pages(ckpt["offset"], int(opts.get("batch_size", DEFAULT_BATCH))):
                if points:
                    dst.write(points, ckpt)
                ckpt["offset"], ckpt["copied"] = nxt, ckpt["copied"] + len(points)
                write_json_atomic(dest / CHECKPOINT, ckpt)
                for p in points:  # reservoir sample over everything this run copies
                    seen += 1
                    j = rng.randrange(seen)
                    if len(sample) < verify:
                        sample.append(p)
                    elif j < verify:
                        sample[j] = p
                report.copied += len(points)
                advance(len(points))
                if on_page is not None:
                    on_page(int(ckpt["copied"]))
            ckpt["done"] = True
            write_json_atomic(dest / CHECKPOINT, ckpt)
    report.seconds = time.perf_counter() - t0
    report.points = dst.stored(ckpt)
    if report.points != total:
        raise MMRAGError(
            f"copy check failed: {src.label} holds {total} points, {dest} got {report.points} "
            f"(was the source changed during the copy? delete {dest} and copy again)"
        )
    _check_same(sample, dst.retrieve([p.id for p in sample], ckpt), str(dest))
    report.verified = len(sample)


def _check_same(sample: list[PointData], got: dict[str, PointData], dest: str) -> None:
    for p in sample:
        q = got.get(p.id)
        if q is None:
            raise MMRAGError(f"copy check failed: point {p.id} is missing from {dest}")
        same_dense = set(p.dense) == set(q.dense) and all(
            np.allclose(p.dense[k], q.dense[k], atol=1e-5) for k in p.dense
        )
        if not same_dense:
            raise MMRAGError(f"copy check failed: point {p.id} has other dense vectors in {dest}")
        if not _same_sparse(p.sparse, q.sparse):
            raise MMRAGError(f"copy check failed: point {p.id} has another BM25 vector in {dest}")
        if p.payload != q.payload:
            raise MMRAGError(f"copy check failed: point {p.id} has another payload in {dest}")


def _same_sparse(a: SparseVec | None, b: SparseVec | None) -> bool:
    if a is None or b is None:
        return a is b
    # A server may reorder a sparse vector's entries: compare them sorted by index.
    ia, ib = np.asarray(a.indices, dtype=np.int64), np.asarray(b.indices, dtype=np.int64)
    oa, ob = np.argsort(ia), np.argsort(ib)
    va, vb = np.asarray(a.values, dtype=np.float32)[oa], np.asarray(b.values, dtype=np.float32)[ob]
    return bool(np.array_equal(ia[oa], ib[ob]) and np.allclose(va, vb, rtol=1e-6, atol=0))


# -- index folders -----------------------------------------------------------------------------------
def _schema(manifest: dict[str, Any], where: Path) -> StoreSchema:
    dense = (manifest.get("store") or {}).get("dense")
    if not dense:
        raise MMRAGError(f"{where}: the manifest names no vector spaces (store.dense); nothing to copy")
    st = (manifest.get("config") or {}).get("store") or {}
    return StoreSchema(
        {str(k): int(v) for k, v in dense.items()},
        int(st.get("hnsw_m", 16)),
        int(st.get("hnsw_ef_construct", 100)),
        bool(st.get("on_disk", False)),
    )


def _location(manifest: dict[str, Any]) -> tuple[str | None, str]:
    """Where an index's points are: (server URL or None for the embedded shard, collection)."""
    st = (manifest.get("config") or {}).get("store") or {}
    collection = st.get("collection") or (manifest.get("store") or {}).get("collection") or "mmrag"
    return st.get("url"), str(collection)


@contextmanager
def _source_index(index: Path, api_key: str | None) -> Iterator[tuple[StoreEnd, dict[str, Any]]]:
    """The points of an index folder (embedded, or on the server its manifest names) and its manifest."""
    manifest = read_manifest(index)
    if manifest is None:
        raise MMRAGError(f"{index}: no index here (no {MANIFEST}); build one with mmrag index")
    url, collection = _location(manifest)
    schema = _schema(manifest, index)
    lock = None
    try:
        store: Store
        if url is None:
            if not (index / "store").is_dir():
                raise MMRAGError(
                    f"{index}: the embedded store (store/) is missing; the index holds no points"
                )
            lock = IndexLock(index)  # an indexer writing meanwhile would make the copy incomplete
            lock.acquire()
            store, label = EdgeStore(index / "store", schema), f"index {index}"
        else:
            store = ClientStore(url, schema, collection, api_key, create=False)
            label = f"index {index} (collection {collection!r} at {url})"
        with store:
            yield StoreEnd(store, label), manifest
    finally:
        if lock is not None:
            lock.release()


def _copy_files(src: Path, dest: Path) -> None:
    """Copy the file table with sqlite's online backup (consistent even while it is being read)."""
    from mmrag.index.folder import FileTable

    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    if not src.is_file():
        FileTable(tmp).close()  # an index without a file table yet: an empty one
    else:
        inp, out = sqlite3.connect(str(src), timeout=30), sqlite3.connect(str(tmp))
        try:
            inp.backup(out)
        finally:
            inp.close()
            out.close()
    os.replace(tmp, dest)


def _dest_manifest(
    manifest: dict[str, Any], url: str | None, collection: str, options: ServerOptions | None, source: str
) -> dict[str, Any]:
    m = copy.deepcopy(manifest)
    m.setdefault("store", {}).update(
        backend="edge" if url is None else "qdrant-server", collection=collection
    )
    cfg = m.setdefault("config", {}).setdefault("store", {})
    cfg.pop("api_key", None)
    cfg.update(url=url, collection=collection)
    if url is not None and options is not None:
        cfg.update(asdict(options))  # Pipeline.load applies what StoreConfig knows (timeout, oversampling)
    m["updated_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    m["copied_from"] = source
    return m


def _into_index(
    src: StoreEnd | BundleEnd,
    manifest: dict[str, Any],
    files: Path,
    dest: Path,
    target: tuple[str | None, str, str | None, ServerOptions | None],
    opts: dict[str, Any],
) -> TransferReport:
    url, collection, api_key, options = target
    report = TransferReport(
        src.label, str(dest) if url is None else f"{dest} (collection {collection!r} at {url})"
    )
    dest.mkdir(parents=True, exist_ok=True)
    lock = IndexLock(dest)  # one copy at a time into a folder
    lock.acquire()
    try:
        ckpt = _prepare(dest, src.label, {"url": url, "collection": collection if url else None})
        schema = _schema(manifest, dest)
        store: Store
        if url is None:
            store = EdgeStore(dest / "store", schema)
        else:
            store = ClientStore(url, schema, collection, api_key, options)
        with store:
            if not ckpt.get("target_checked"):
                if store.count():
                    raise MMRAGError(
                        f"collection {collection!r} at {url} already holds {store.count()} points; "
                        "choose another --collection (or delete that one first)"
                    )
                ckpt["target_checked"] = True
                write_json_atomic(dest / CHECKPOINT, ckpt)
            _copy(src, StoreEnd(store, str(dest)), dest, ckpt, report, opts)
            if url is None:
                t0 = time.perf_counter()
                store.optimize()  # the embedded engine builds HNSW only when asked
                report.optimize_seconds = time.perf_counter() - t0
        _copy_files(files, dest / FILES)
        write_json_atomic(dest / MANIFEST, _dest_manifest(manifest, url, collection, options, src.label))
        (dest / CHECKPOINT).unlink()
    finally:
        lock.release()
    return report


# -- the front door ----------------------------------------------------------------------------------
def export_bundle(
    index: str | Path,
    dest: str | Path,
    *,
    api_key: str | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
    verify: int = VERIFY_SAMPLE,
    on_page: Callable[[int], None] | None = None,
) -> TransferReport:
    """Write an index (embedded or on a server) to a portable bundle folder.

    Args:
        index: The index folder.
        dest: A new (or empty) folder; an interrupted export into it goes on where it stopped.
        api_key: API key of the server holding the index's points, if any.
        batch_size: Points per page read, and per part file written.
        progress: Show a progress bar on stderr.
        verify: Points read back and compared after the copy.
        on_page: Called with the number of points copied so far after every page.

    Raises:
        MMRAGError: No index at `index`, `dest` is not empty, or a check after the copy failed.

    Example:
        >>> export_bundle("./idx", "/mnt/usb/idx.bundle")  # doctest: +SKIP
    """
    index, dest = Path(index).expanduser().resolve(), Path(dest).expanduser().resolve()
    opts = {"batch_size": batch_size, "progress": progress, "verify": verify, "on_page": on_page}
    with _source_index(index, api_key) as (src, manifest):
        spaces = _schema(manifest, index).dense
        ckpt = _prepare(dest, src.label, {"bundle": str(dest)})
        report = TransferReport(src.label, str(dest))
        _copy(src, BundleEnd(dest, spaces), dest, ckpt, report, opts)
        _copy_files(index / FILES, dest / FILES)
    write_json_atomic(dest / MANIFEST, manifest)
    meta = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "points": report.points,
        "dense": spaces,
        "parts": ckpt["parts"],
        "source": src.label,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(dest / BUNDLE, meta)
    (dest / CHECKPOINT).unlink()
    return report


def import_bundle(
    bundle: str | Path,
    dest: str | Path,
    *,
    url: str | None = None,
    collection: str | None = None,
    api_key: str | None = None,
    options: ServerOptions | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
    verify: int = VERIFY_SAMPLE,
    on_page: Callable[[int], None] | None = None,
) -> TransferReport:
    """Make a new index folder from a bundle: points in its embedded store, or on a server.

    Args:
        bundle: A folder written by `export_bundle`.
        dest: The new index folder (new or empty; an interrupted import goes on where it stopped).
        url: Qdrant server for the points (None: the embedded store in `dest`).
        collection: Collection on the server (default: the one the bundle's index used).
        api_key: API key of that server.
        options: Shards, replicas and quantization of the new collection.
        batch_size: Unused (a bundle is read one part at a time); kept for a uniform signature.
        progress: Show a progress bar on stderr.
        verify: Points read back and compared after the copy.
        on_page: Called with the number of points copied so far after every page.
    """
    bundle, dest = Path(bundle).expanduser().resolve(), Path(dest).expanduser().resolve()
    meta = read_bundle(bundle)
    manifest = read_manifest(bundle)
    if manifest is None:
        raise MMRAGError(f"{bundle}: the bundle has no {MANIFEST}; export it again")
    src = BundleEnd(bundle, _schema(manifest, bundle).dense, meta)
    opts = {"batch_size": batch_size, "progress": progress, "verify": verify, "on_page": on_page}
    target = (url, collection or _location(manifest)[1], api_key, options)
    return _into_index(src, manifest, bundle / FILES, dest, target, opts)


def copy_index(
    index: str | Path,
    dest: str | Path,
    *,
    url: str | None = None,
    collection: str | None = None,
    api_key: str | None = None,
    source_api_key: str | None = None,
    options: ServerOptions | None = None,
    batch_size: int = DEFAULT_BATCH,
    progress: bool = False,
    verify: int = VERIFY_SAMPLE,
    on_page: Callable[[int], None] | None = None,
) -> TransferReport:
    """Copy an index into a new index folder, moving its points between the embedded store and a server.

    Embedded to server: `copy_index("./idx", "./idx-server", url="http://qdrant:6333")`; server to
    embedded: `copy_index("./idx-server", "./idx-local")`. The vectors are copied, never re-encoded.

    Args:
        index: The source index folder (its manifest says where its points are).
        dest: The new index folder (new or empty; an interrupted copy goes on where it stopped).
        url: Qdrant server for the copy's points (None: the embedded store in `dest`).
        collection: Collection on that server (default: the source's collection name).
        api_key: API key of the destination server.
        source_api_key: API key of the source's server, if its points are on one.
        options: Shards, replicas and quantization of the new collection.
        batch_size: Points per page read and written.
        progress: Show a progress bar on stderr.
        verify: Points read back and compared after the copy.
        on_page: Called with the number of points copied so far after every page.

    Raises:
        MMRAGError: No index at `index`, `dest` or the collection is not empty, or a check failed.
    """
    index, dest = Path(index).expanduser().resolve(), Path(dest).expanduser().resolve()
    if index == dest:
        raise MMRAGError(f"{index}: source and destination are the same folder")
    opts = {"batch_size": batch_size, "progress": progress, "verify": verify, "on_page": on_page}
    with _source_index(index, source_api_key) as (src, manifest):
        target = (url, collection or _location(manifest)[1], api_key, options)
        return _into_index(src, manifest, index / FILES, dest, target, opts)
