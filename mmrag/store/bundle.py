"""The two ends of an index copy: a store (either backend) or a bundle folder, read page by page.

The bundle is the portable format of `mmrag export --to DIR`: a description file and checksummed parts.

`bundle.json` names the format, its version and the part files; each `points-NNNNN.npz` holds one
page of points (dense vectors per space, multi-vectors as rows plus offsets, BM25 sparse vectors,
payloads as compressed JSON) and is checked against its SHA-256 when read. A bundle never points
outside its folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmrag.store.base import BM25, PointData, SparseVec, Store
from mmrag.store.edge import EdgeStore
from mmrag.store.server import ClientStore
from mmrag.types import MMRAGError

BUNDLE = "bundle.json"
BUNDLE_FORMAT, BUNDLE_VERSION = "mmrag-bundle", 1
PART = re.compile(r"points-\d{5}\.npz")


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


class StoreEnd:
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
                records, nxt = edge_store(self.store).shard.scroll(request)
                rows, offset = [_edge_row(r) for r in records], None if nxt is None else str(nxt)
            yield [_row_to_point(r) for r in rows], offset
            if offset is None:
                return

    def write(self, points: list[PointData], ckpt: dict[str, Any]) -> None:
        self.store.upsert(points)

    def retrieve(self, ids: Sequence[str], ckpt: dict[str, Any]) -> dict[str, PointData]:
        return {r["id"]: _row_to_point(r) for r in self.store.get(ids, with_vectors=True)}

    def stored(self, ckpt: dict[str, Any]) -> int:
        return self.store.count()


def edge_store(store: Store) -> EdgeStore:
    if not isinstance(store, EdgeStore):
        raise MMRAGError(f"cannot copy points out of or into {store!r}")
    return store


# -- the copy ----------------------------------------------------------------------------------------


# -- the bundle's part files -------------------------------------------------------------------------
def _encode_part(
    points: Sequence[PointData], spaces: dict[str, int], multi: dict[str, int] | None = None
) -> dict[str, Any]:
    n = len(points)
    arrays: dict[str, Any] = {"ids": np.array([p.id for p in points], dtype=str)}
    for name, dim in (multi or {}).items():
        # a page's rows one after another; `indptr[i]:indptr[i + 1]` are point i's (none: no vector)
        mats = [np.asarray(p.dense[name], np.float32).reshape(-1, dim) for p in points if name in p.dense]
        counts = [len(np.asarray(p.dense[name]).reshape(-1, dim)) if name in p.dense else 0 for p in points]
        arrays[f"multi.{name}.rows"] = np.concatenate(mats) if mats else np.zeros((0, dim), np.float32)
        arrays[f"multi.{name}.indptr"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
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


def _decode_part(z: Any, spaces: dict[str, int], multi: dict[str, int] | None = None) -> list[PointData]:
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
        for name in multi or {}:
            rows, ptr = z[f"multi.{name}.rows"], z[f"multi.{name}.indptr"]
            if ptr[i + 1] > ptr[i]:
                vecs[name] = rows[ptr[i] : ptr[i + 1]]
        sp = None
        if has_sparse[i]:
            a, b = indptr[i], indptr[i + 1]
            sp = SparseVec(indices[a:b].tolist(), values[a:b].tolist())
        points.append(PointData(pid, vecs, sp, payloads[i]))
    return points


def _write_part(
    path: Path, points: Sequence[PointData], spaces: dict[str, int], multi: dict[str, int] | None = None
) -> str:
    """Write one part (through a temporary file and a rename); returns its sha256."""
    buf = io.BytesIO()
    # Only the payload text is compressed: zlib gains under 1% on float32 embeddings and BM25 token
    # hashes, and compressing them cost more time than the rest of an export together.
    np.savez(buf, **_encode_part(points, spaces, multi))
    data = buf.getvalue()
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def _read_part(
    path: Path, sha256: str, spaces: dict[str, int], multi: dict[str, int] | None = None
) -> list[PointData]:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MMRAGError(f"{path}: cannot read bundle part: {e}") from e
    if hashlib.sha256(data).hexdigest() != sha256:
        raise MMRAGError(f"{path}: checksum mismatch: the part is damaged or was changed; export again")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:  # never unpickle what a file says
            return _decode_part(z, spaces, multi)
    except (ValueError, KeyError, OSError, zlib.error) as e:
        raise MMRAGError(f"{path}: not a readable bundle part: {type(e).__name__}: {e}") from e


def read_bundle(folder: Path) -> dict[str, Any]:
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


class BundleEnd:
    """A bundle folder: read part by part, or written one part per page."""

    def __init__(
        self,
        folder: Path,
        spaces: dict[str, int],
        meta: dict[str, Any] | None = None,
        multi: dict[str, int] | None = None,
    ) -> None:
        self.folder, self.spaces, self.meta = folder, spaces, meta or {}
        self.multi = multi or {}
        self.label = f"bundle {folder}"

    def count(self) -> int:
        return int(self.meta.get("points", 0))

    def pages(self, start: Any, size: int) -> Iterator[tuple[list[PointData], Any]]:
        parts = self.meta.get("parts", [])
        for k in range(int(start or 0), len(parts)):
            part = parts[k]
            points = _read_part(self.folder / part["file"], part["sha256"], self.spaces, self.multi)
            yield points, (k + 1 if k + 1 < len(parts) else None)

    def write(self, points: list[PointData], ckpt: dict[str, Any]) -> None:
        name = f"points-{len(ckpt['parts']):05d}.npz"
        sha = _write_part(self.folder / name, points, self.spaces, self.multi)
        ckpt["parts"].append({"file": name, "points": len(points), "sha256": sha})

    def retrieve(self, ids: Sequence[str], ckpt: dict[str, Any]) -> dict[str, PointData]:
        want, out = set(ids), {}
        for part in ckpt["parts"]:
            for p in _read_part(self.folder / part["file"], part["sha256"], self.spaces, self.multi):
                if p.id in want:
                    out[p.id] = p
        return out

    def stored(self, ckpt: dict[str, Any]) -> int:
        return sum(int(p["points"]) for p in ckpt["parts"])
