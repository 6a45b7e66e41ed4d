"""The streamed copy behind every transfer (`mmrag.index.transfer`): pages, checkpoint, then checks.

`copy_points` pages through a source (`StoreEnd` or `BundleEnd`) in point-id order and writes each
page to the destination; after each page the offset of the next goes to `.transfer.json` in the
destination folder (`prepare` makes it, or reads an interrupted copy's), so a copy run again goes
on where it stopped. At the end the point counts must agree and a reservoir sample of the copied
points must read back from the destination with the same vectors and payloads.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypedDict

import numpy as np

from mmrag.index.folder import MANIFEST, write_json_atomic
from mmrag.index.progress import progress_bar
from mmrag.store.bundle import BUNDLE, BundleEnd, StoreEnd
from mmrag.types import MMRAGError, PointData, SparseVec

CHECKPOINT = ".transfer.json"
DEFAULT_BATCH = 1024
# Points compared vector by vector after a copy (a reservoir sample over the whole copy).
VERIFY_SAMPLE = 64


class CopyOptions(TypedDict, total=False):
    """How a copy runs: the keyword arguments every transfer takes (`export_bundle`, `import_bundle`,
    `copy_index`) and hands to `copy_points` unchanged."""

    batch_size: int
    """Points per page read and written (and per part file of a bundle); default `DEFAULT_BATCH`."""
    progress: bool
    """Show a progress bar on stderr."""
    verify: int
    """Points read back from the destination and compared after the copy; default `VERIFY_SAMPLE`."""
    on_page: Callable[[int], None] | None
    """Called with the number of points copied so far after every page."""


class IntoIndex(CopyOptions, total=False):
    """Where a copy into a new index folder puts its points, with how it runs (`import_bundle`,
    `copy_index`)."""

    url: str | None
    """Qdrant server for the points (None: the embedded store in the new folder)."""
    collection: str | None
    """Collection on that server (default: the one the source index used)."""
    api_key: str | None
    """API key of that server."""
    options: Any
    """`ServerOptions`: shards, replicas and quantization of a new collection on the server."""


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


def prepare(dest: Path, source: str, target: dict[str, Any]) -> dict[str, Any]:
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


def copy_points(
    src: StoreEnd | BundleEnd,
    dst: StoreEnd | BundleEnd,
    dest: Path,
    ckpt: dict[str, Any],
    report: TransferReport,
    opts: CopyOptions,
) -> None:
    """Stream every page of `src` into `dst`, checkpointing after each; then check counts and a sample."""
    total, verify = src.count(), int(opts.get("verify", VERIFY_SAMPLE))
    report.resumed_at = int(ckpt["copied"])
    sample: list[PointData] = []
    rng, seen = random.Random(0), 0
    on_page = opts.get("on_page")
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
