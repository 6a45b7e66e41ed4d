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

The copy (`mmrag.index.transfer_copy`) pages through the source in point-id order (scroll with
vectors and payloads) and upserts each page. Point ids are stable UUIDs, so writing a page twice
leaves one copy. After each page the offset of the next one goes to `.transfer.json` in the
destination, so an interrupted copy run again goes on where it stopped. The destination's manifest
is written last: a folder with a manifest is a complete index that `Pipeline.load` opens. Then the
point counts must agree and a random sample of points must come back from the destination with the
same vectors and payloads. This module opens the ends (index folders, servers, bundles) and writes
the manifests, file tables and bundle description around the copy.
"""

from __future__ import annotations

import copy
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.index.folder import MANIFEST, IndexLock, read_manifest, write_json_atomic
from mmrag.index.transfer_copy import CHECKPOINT, CopyOptions, IntoIndex, TransferReport, copy_points, prepare
from mmrag.store.base import Store, StoreSchema
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

if TYPE_CHECKING:
    from typing_extensions import Unpack

FILES = "files.sqlite"


def is_url(target: str) -> bool:
    """Whether `target` names a Qdrant server (or qdrant-client local mode) rather than a folder."""
    return "://" in target or target == ":memory:" or target.startswith("local:")


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
        {str(k): int(v) for k, v in ((manifest.get("store") or {}).get("multi") or {}).items()},
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
    src: StoreEnd | BundleEnd, manifest: dict[str, Any], files: Path, dest: Path, into: IntoIndex
) -> TransferReport:
    """Copy `src` into the new index folder `dest` (points embedded or on `into`'s server), then its
    file table and, last, its manifest."""
    url, api_key, options = into.get("url"), into.get("api_key"), into.get("options")
    collection = into.get("collection") or _location(manifest)[1]
    report = TransferReport(
        src.label, str(dest) if url is None else f"{dest} (collection {collection!r} at {url})"
    )
    dest.mkdir(parents=True, exist_ok=True)
    lock = IndexLock(dest)  # one copy at a time into a folder
    lock.acquire()
    try:
        ckpt = prepare(dest, src.label, {"url": url, "collection": collection if url else None})
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
            copy_points(src, StoreEnd(store, str(dest)), dest, ckpt, report, into)
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
    index: str | Path, dest: str | Path, *, api_key: str | None = None, **copy: Unpack[CopyOptions]
) -> TransferReport:
    """Write an index (embedded or on a server) to a portable bundle folder.

    Args:
        index: The index folder.
        dest: A new (or empty) folder; an interrupted export into it goes on where it stopped.
        api_key: API key of the server holding the index's points, if any.
        **copy: How the copy runs (`CopyOptions`: `batch_size` points per page read and per part
            file written, `progress`, `verify`, `on_page`).

    Raises:
        MMRAGError: No index at `index`, `dest` is not empty, or a check after the copy failed.

    Example:
        >>> export_bundle("./idx", "/mnt/usb/idx.bundle")  # doctest: +SKIP
    """
    index, dest = Path(index).expanduser().resolve(), Path(dest).expanduser().resolve()
    with _source_index(index, api_key) as (src, manifest):
        schema = _schema(manifest, index)
        spaces = schema.dense
        ckpt = prepare(dest, src.label, {"bundle": str(dest)})
        report = TransferReport(src.label, str(dest))
        copy_points(src, BundleEnd(dest, spaces, multi=schema.multi), dest, ckpt, report, copy)
        _copy_files(index / FILES, dest / FILES)
    write_json_atomic(dest / MANIFEST, manifest)
    meta = {
        "format": BUNDLE_FORMAT,
        "version": BUNDLE_VERSION,
        "points": report.points,
        "dense": spaces,
        "multi": schema.multi,
        "parts": ckpt["parts"],
        "source": src.label,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(dest / BUNDLE, meta)
    (dest / CHECKPOINT).unlink()
    return report


def import_bundle(bundle: str | Path, dest: str | Path, **into: Unpack[IntoIndex]) -> TransferReport:
    """Make a new index folder from a bundle: points in its embedded store, or on a server.

    Args:
        bundle: A folder written by `export_bundle`.
        dest: The new index folder (new or empty; an interrupted import goes on where it stopped).
        **into: Where the points go and how the copy runs (`IntoIndex`: `url`, `collection`,
            `api_key`, `options`; `progress`, `verify`, `on_page`; `batch_size` is unused, a bundle
            is read one part at a time).
    """
    bundle, dest = Path(bundle).expanduser().resolve(), Path(dest).expanduser().resolve()
    meta = read_bundle(bundle)
    manifest = read_manifest(bundle)
    if manifest is None:
        raise MMRAGError(f"{bundle}: the bundle has no {MANIFEST}; export it again")
    schema = _schema(manifest, bundle)
    src = BundleEnd(bundle, schema.dense, meta, multi=schema.multi)
    return _into_index(src, manifest, bundle / FILES, dest, into)


def copy_index(
    index: str | Path, dest: str | Path, *, source_api_key: str | None = None, **into: Unpack[IntoIndex]
) -> TransferReport:
    """Copy an index into a new index folder, moving its points between the embedded store and a server.

    Embedded to server: `copy_index("./idx", "./idx-server", url="http://qdrant:6333")`; server to
    embedded: `copy_index("./idx-server", "./idx-local")`. The vectors are copied, never re-encoded.

    Args:
        index: The source index folder (its manifest says where its points are).
        dest: The new index folder (new or empty; an interrupted copy goes on where it stopped).
        source_api_key: API key of the source's server, if its points are on one.
        **into: Where the copy's points go and how the copy runs (`IntoIndex`: `url`, `collection`
            (default: the source's collection name), `api_key` of the destination server, `options`;
            `batch_size`, `progress`, `verify`, `on_page`).

    Raises:
        MMRAGError: No index at `index`, `dest` or the collection is not empty, or a check failed.
    """
    index, dest = Path(index).expanduser().resolve(), Path(dest).expanduser().resolve()
    if index == dest:
        raise MMRAGError(f"{index}: source and destination are the same folder")
    with _source_index(index, source_api_key) as (src, manifest):
        return _into_index(src, manifest, index / FILES, dest, into)
