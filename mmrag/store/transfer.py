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
import hashlib
import io
import json
import os
import random
import re
import sqlite3
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.manifest import MANIFEST, IndexLock, read_manifest, write_json_atomic
from mmrag.store.base import BM25, PointData, SparseVec, Store, StoreSchema
from mmrag.store.client import ClientStore, ServerOptions
from mmrag.store.edge import EdgeStore
from mmrag.types import MMRAGError

BUNDLE = "bundle.json"
BUNDLE_FORMAT, BUNDLE_VERSION = "mmrag-bundle", 1
PART = re.compile(r"points-\d{5}\.npz")
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


# -- the bundle's part files -------------------------------------------------------------------------
def _encode_part(points: Sequence[PointData], spaces: dict[str, int]) -> dict[str, Any]:
    n = len(points)
    arrays: dict[str, Any] = {"ids": np.array([p.id for p in points], dtype=str)}
    for name, dim in spaces.items():
        mat, has = np.zeros((n, dim), dtype=np.float32), np.zeros(n, dtype=bool)
        for i, p in enumerate(points):
            if name in p.dense:
                mat[i], has[i] = p.dense[name], True
        arrays[f"dense.{name}"], arrays[f"has.{name}"] = mat, has
    sparse = [p.sparse for p in points]
    lengths = [len(s.indices) if s is not None else 0 for s in sparse]
    arrays["bm25.has"] = np.array([s is not None for s in sparse], dtype=bool)
    arrays["bm25.indptr"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    arrays["bm25.indices"] = np.array([i for s in sparse if s for i in s.indices], dtype=np.uint32)
    arrays["bm25.values"] = np.array([v for s in sparse if s for v in s.values], dtype=np.float32)
    payloads = json.dumps([p.payload for p in points], ensure_ascii=False).encode("utf-8")
    arrays["payload.zlib"] = np.frombuffer(zlib.compress(payloads, 1), dtype=np.uint8)
    return arrays


def _decode_part(z: Any, spaces: dict[str, int]) -> list[PointData]:
    ids = [str(i) for i in z["ids"]]
    payloads = json.loads(zlib.decompress(z["payload.zlib"].tobytes()).decode("utf-8"))
    has_sparse, indptr = z["bm25.has"], z["bm25.indptr"]
    indices, values = z["bm25.indices"], z["bm25.values"]
    if not (len(payloads) == len(has_sparse) == len(indptr) - 1 == len(ids)):
        raise ValueError("arrays of different lengths")
    dense = {name: (z[f"dense.{name}"], z[f"has.{name}"]) for name in spaces}
    points = []
    for i, pid in enumerate(ids):
        vecs = {name: mat[i] for name, (mat, has) in dense.items() if has[i]}
        sp = None
        if has_sparse[i]:
            a, b = indptr[i], indptr[i + 1]
            sp = SparseVec(indices[a:b].tolist(), values[a:b].tolist())
        points.append(PointData(pid, vecs, sp, payloads[i]))
    return points


def _write_part(path: Path, points: Sequence[PointData], spaces: dict[str, int]) -> str:
    """Write one part (through a temporary file and a rename); returns its sha256."""
    buf = io.BytesIO()
    # Only the payload text is compressed: zlib gains under 1% on float32 embeddings and BM25 token
    # hashes, and compressing them cost more time than the rest of an export together.
    np.savez(buf, **_encode_part(points, spaces))
    data = buf.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def _read_part(path: Path, sha256: str, spaces: dict[str, int]) -> list[PointData]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MMRAGError(f"{path}: cannot read bundle part: {e}") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise MMRAGError(f"{path}: checksum mismatch: the part is damaged or was changed; export again")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:  # never unpickle what a file says
            return _decode_part(z, spaces)
    except (ValueError, KeyError, OSError, zlib.error) as e:
        raise MMRAGError(f"{path}: not a readable bundle part: {type(e).__name__}: {e}") from e


def _read_bundle(folder: Path) -> dict[str, Any]:
    path = folder / BUNDLE
    if not path.is_file():
        raise MMRAGError(f"{folder}: not an mmrag bundle (no {BUNDLE}); write one with mmrag export --to")
    try:
        meta: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise MMRAGError(f"{path}: unreadable bundle description: {e}") from e
    if meta.get("format") != BUNDLE_FORMAT or meta.get("version") != BUNDLE_VERSION:
        raise MMRAGError(
            f"{path}: bundle format {meta.get('format')!r} version {meta.get('version')!r} is not "
            f"supported (this mmrag reads {BUNDLE_FORMAT!r} version {BUNDLE_VERSION})"
        )
    for part in meta.get("parts", []):
        if not PART.fullmatch(str(part.get("file"))):  # a bundle must not point outside its folder
            raise MMRAGError(f"{path}: bad part file name {part.get('file')!r}")
    return meta


# -- the two ends of a copy --------------------------------------------------------------------------
def _row_to_point(row: dict[str, Any]) -> PointData:
    vectors = row.get("vectors") or {}
    sparse = vectors.get(BM25)
    dense = {k: np.asarray(v, dtype=np.float32) for k, v in vectors.items() if k != BM25}
    return PointData(row["id"], dense, sparse if isinstance(sparse, SparseVec) else None, row["payload"])


def _edge_row(r: Any) -> dict[str, Any]:
    vectors = {
        name: SparseVec(list(v.indices), list(v.values)) if hasattr(v, "indices") else v
        for name, v in (r.vector or {}).items()
    }
    return {"id": str(r.id), "payload": dict(r.payload or {}), "vectors": vectors}


class _StoreEnd:
    """A store of either backend, read page by page in id order or written to."""

    def __init__(self, store: Store, label: str) -> None:
        self.store, self.label = store, label

    def count(self) -> int:
        return self.store.count()

    def pages(self, start: Any, size: int) -> Iterator[tuple[list[PointData], Any]]:
        offset = start
        while True:
            if isinstance(self.store, ClientStore):
                rows, offset = self.store.scroll_page(offset, size, with_vectors=True)
            else:
                import qdrant_edge as qe

                request = qe.ScrollRequest(offset=offset, limit=size, with_payload=True, with_vector=True)
                records, nxt = _edge(self.store).shard.scroll(request)
                rows, offset = [_edge_row(r) for r in records], None if nxt is None else str(nxt)
            yield [_row_to_point(r) for r in rows], offset
            if offset is None:
                return

    def write(self, points: list[PointData], ckpt: dict[str, Any]) -> None:
        self.store.upsert(points)

    def retrieve(self, ids: Sequence[str], ckpt: dict[str, Any]) -> dict[str, PointData]:
        if isinstance(self.store, ClientStore):
            rows = self.store.retrieve(ids)
        else:
            records = _edge(self.store).shard.retrieve(list(ids), with_payload=True, with_vector=True)
            rows = [_edge_row(r) for r in records]
        return {r["id"]: _row_to_point(r) for r in rows}

    def stored(self, ckpt: dict[str, Any]) -> int:
        return self.store.count()


class _BundleEnd:
    """A bundle folder: read part by part, or written one part per page."""

    def __init__(self, folder: Path, spaces: dict[str, int], meta: dict[str, Any] | None = None) -> None:
        self.folder, self.spaces, self.meta = folder, spaces, meta or {}
        self.label = f"bundle {folder}"

    def count(self) -> int:
        return int(self.meta.get("points", 0))

    def pages(self, start: Any, size: int) -> Iterator[tuple[list[PointData], Any]]:
        parts = self.meta.get("parts", [])
        for k in range(int(start or 0), len(parts)):
            part = parts[k]
            points = _read_part(self.folder / part["file"], part["sha256"], self.spaces)
            yield points, (k + 1 if k + 1 < len(parts) else None)

    def write(self, points: list[PointData], ckpt: dict[str, Any]) -> None:
        name = f"points-{len(ckpt['parts']):05d}.npz"
        sha = _write_part(self.folder / name, points, self.spaces)
        ckpt["parts"].append({"file": name, "points": len(points), "sha256": sha})

    def retrieve(self, ids: Sequence[str], ckpt: dict[str, Any]) -> dict[str, PointData]:
        want, out = set(ids), {}
        for part in ckpt["parts"]:
            for p in _read_part(self.folder / part["file"], part["sha256"], self.spaces):
                if p.id in want:
                    out[p.id] = p
        return out

    def stored(self, ckpt: dict[str, Any]) -> int:
        return sum(int(p["points"]) for p in ckpt["parts"])


def _edge(store: Store) -> EdgeStore:
    if not isinstance(store, EdgeStore):
        raise MMRAGError(f"cannot copy points out of or into {store!r}")
    return store


# -- the copy ----------------------------------------------------------------------------------------
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
    src: _StoreEnd | _BundleEnd,
    dst: _StoreEnd | _BundleEnd,
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
    with _progress(bool(opts.get("progress")), total, report.resumed_at, f"into {dest.name}") as advance:
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


class _progress:
    """A rich progress bar on stderr (points copied / total), or nothing."""

    def __init__(self, enabled: bool, total: int, done: int, label: str) -> None:
        self.enabled, self.total, self.done, self.label = enabled, total, done, label
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.bar = bar = Progress(
            TextColumn("[bold]copying[/] points"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", markup=False),
            console=Console(stderr=True),
        )
        bar.start()
        task = bar.add_task(self.label[-60:], total=self.total, completed=self.done)
        return lambda n: bar.update(task, advance=n)

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


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
def _source_index(index: Path, api_key: str | None) -> Iterator[tuple[_StoreEnd, dict[str, Any]]]:
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
            yield _StoreEnd(store, label), manifest
    finally:
        if lock is not None:
            lock.release()


def _copy_files(src: Path, dest: Path) -> None:
    """Copy the file table with sqlite's online backup (consistent even while it is being read)."""
    from mmrag.manifest import FileTable

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
    src: _StoreEnd | _BundleEnd,
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
            _copy(src, _StoreEnd(store, str(dest)), dest, ckpt, report, opts)
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
        _copy(src, _BundleEnd(dest, spaces), dest, ckpt, report, opts)
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
    meta = _read_bundle(bundle)
    manifest = read_manifest(bundle)
    if manifest is None:
        raise MMRAGError(f"{bundle}: the bundle has no {MANIFEST}; export it again")
    src = _BundleEnd(bundle, _schema(manifest, bundle).dense, meta)
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
