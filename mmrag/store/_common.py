"""What both store backends share: the meaning of a `SearchFilter` and the checks on input.

Each backend turns the backend-neutral `Condition`s below into its own filter type, so a filter
means exactly the same thing on qdrant-edge-py and on a Qdrant server.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmrag.store.base import BM25, PointData, Prefetch, SearchFilter, StoreSchema
from mmrag.store.base import RRF_K as RRF_K  # re-exported for the backends
from mmrag.types import MMRAGError

# Page size of scroll loops and batch size of upserts: large enough to amortise the per-call cost,
# small enough that one request stays a few MB with 512-d vectors.
BATCH = 256


@dataclass(frozen=True)
class Condition:
    """One payload condition: `key` matches one of `any_of`, or lies in the (inclusive) range."""

    key: str
    any_of: tuple[str, ...] | None = None
    gte: float | None = None
    lte: float | None = None


def conditions(flt: SearchFilter | None) -> list[Condition]:
    """The conditions a filter stands for; all of them must hold.

    The time range selects clips that overlap `[t_min, t_max]` (both ends inclusive): a clip
    `[t_start, t_end]` matches when `t_start <= t_max` and `t_end >= t_min`. Points without a time
    (images, pages, text) never match a time range.
    """
    if flt is None:
        return []
    out: list[Condition] = []
    if flt.modalities is not None:
        out.append(Condition("modality", any_of=tuple(flt.modalities)))
    if flt.paths is not None:
        out.append(Condition("path", any_of=tuple(flt.paths)))
    if flt.page_min is not None or flt.page_max is not None:
        out.append(Condition("page", gte=flt.page_min, lte=flt.page_max))
    if flt.t_max is not None:
        out.append(Condition("t_start", lte=flt.t_max))
    if flt.t_min is not None:
        out.append(Condition("t_end", gte=flt.t_min))
    for key, values in sorted((flt.match or {}).items()):
        out.append(Condition(key, any_of=tuple(values)))
    return out


def dense_list(schema: StoreSchema, name: str, vec: np.ndarray, what: str) -> Any:
    """`vec` as a float list after checking that the space exists and the dim fits; in a multi-vector
    space, a (tokens, dim) matrix as a list of float lists."""
    if name in schema.multi:
        return multi_list(schema, name, vec, what)
    if name not in schema.dense:
        spaces = sorted(schema.dense) + sorted(schema.multi)
        raise MMRAGError(f"{what}: unknown vector space {name!r} (the store has {spaces})")
    arr = np.asarray(vec, dtype=np.float32).reshape(-1)
    if arr.shape[0] != schema.dense[name]:
        want = schema.dense[name]
        raise MMRAGError(f"{what}: vector {name!r} has dim {arr.shape[0]}, the store expects {want}")
    if not np.all(np.isfinite(arr)):
        raise MMRAGError(f"{what}: vector {name!r} contains NaN or infinity")
    return arr.tolist()


def multi_list(schema: StoreSchema, name: str, vec: np.ndarray, what: str) -> list[list[float]]:
    """A multi-vector as rows of floats, after checking its shape and values."""
    arr = np.asarray(vec, dtype=np.float32)
    want = schema.multi[name]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] != want:
        raise MMRAGError(
            f"{what}: multi-vector {name!r} has shape {arr.shape}, the store expects (tokens >= 1, {want})"
        )
    if not np.all(np.isfinite(arr)):
        raise MMRAGError(f"{what}: multi-vector {name!r} contains NaN or infinity")
    rows: list[list[float]] = arr.tolist()
    return rows


def point_ids(ids: Iterable[str]) -> list[str]:
    """The point ids among `ids`, each once, in order, in canonical form (other strings dropped)."""
    out: dict[str, None] = {}
    for i in ids:
        try:
            out[str(uuid.UUID(str(i)))] = None
        except ValueError:
            continue
    return list(out)


def in_order(ids: Sequence[str], rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """`rows` (each with an `id`) in the order of `ids`, missing ones left out."""
    by_id = {row["id"]: row for row in rows}
    return [by_id[i] for i in ids if i in by_id]


def check_sparse(indices: Sequence[int], values: Sequence[float], what: str) -> None:
    if len(indices) != len(values):
        raise MMRAGError(f"{what}: sparse vector has {len(indices)} indices but {len(values)} values")


def check_prefetch(schema: StoreSchema, p: Prefetch) -> None:
    """A prefetch names either a dense space with a dense query or `bm25` with a sparse one."""
    if (p.dense is None) == (p.sparse is None):
        raise MMRAGError(f"prefetch using {p.using!r}: give exactly one of a dense or a sparse query")
    if p.sparse is not None and p.using != BM25:
        raise MMRAGError(f"prefetch using {p.using!r}: a sparse query must use {BM25!r}")
    if p.limit < 1:
        raise MMRAGError(f"prefetch using {p.using!r}: limit must be positive, got {p.limit}")


def last_per_id(points: Sequence[PointData]) -> list[PointData]:
    """One point per id, the last one given: what an upsert of the points one by one would leave.

    Identical files at two paths share point ids (the id hashes content and locator), so a batch
    may repeat an id; backends differ on which copy of a repeated id wins, so decide it here.
    """
    return list({p.id: p for p in points}.values())


def batches(seq: Sequence[PointData], size: int = BATCH) -> list[Sequence[PointData]]:
    return [seq[i : i + size] for i in range(0, len(seq), size)]
