"""Building the hubness banks (`build_banks`): two passes over a store, then every point's statistics.

Pass 1 keeps uniform samples (reservoir sampling, one scroll, memory O(bank size)) of each space's
vectors and of one sentence per point with text. Pass 2 scrolls again and, block by block, computes
every point's log normalisers over both banks with leave-one-out, and keeps a running top-k per bank
entry for the DualDIS activation sets. The formulas are in `mmrag.retrieve.hubness`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.encoders import aligned_image_space
from mmrag.retrieve.hubness import (
    ACTIVATION_K,
    BETA_GALLERY,
    BETA_QUERY,
    DEFAULT_METHOD,
    METHODS,
    HubnessBanks,
    Method,
    QueryEncoder,
    SpaceBanks,
)
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.encoders.embedders import Embedders
    from mmrag.store.base import Store

# Points per block of pass 2: a block costs (bank size x BATCH) float64 per bank (32 MB at 1000).
BATCH = 4096
# A pseudo-query is one sentence of a chunk: long enough to say something, short like a question.
MIN_CHARS = 30
MAX_CHARS = 300
_SPLIT = re.compile(r"(?<=[.!?])\s+|\n+")


@dataclass
class Drawn:
    """The banks of one space with, for each entry, the point it was drawn from (None: not a point)."""

    dim: int
    query_bank: np.ndarray
    query_src: list[str | None]
    gallery_bank: np.ndarray
    gallery_src: list[str]
    query_source: str


class _Reservoir:
    """A uniform sample of `size` items from a stream of unknown length (Algorithm R)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size = size
        self.rng = rng
        self.seen = 0
        self.items: list[Any] = []
        self._u = np.empty(0)

    def slot(self) -> int:
        """Where the next item of the stream goes, -1 when it is not kept; then call `put`."""
        i = self.seen
        self.seen += 1
        if i < self.size:
            return i
        if not len(self._u):
            self._u = self.rng.random(4096)
        u, self._u = self._u[0], self._u[1:]
        j = int(u * (i + 1))
        return j if j < self.size else -1

    def put(self, slot: int, item: Any) -> None:
        if slot == len(self.items):
            self.items.append(item)
        else:
            self.items[slot] = item


def pseudo_query(text: str, u: float) -> str:
    """The sentence of `text` at fraction `u` among those of at least MIN_CHARS (cut at MAX_CHARS)."""
    parts = [p.strip() for p in _SPLIT.split(text) if len(p.strip()) >= MIN_CHARS]
    if not parts:
        return text.strip()[:MAX_CHARS]
    return parts[min(int(u * len(parts)), len(parts) - 1)][:MAX_CHARS]


def _dense(item: dict[str, Any], space: str) -> Any:
    v = (item.get("vectors") or {}).get(space)
    return v if isinstance(v, list | np.ndarray) and len(v) else None


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms > 0, norms, 1.0)


def draw_banks(
    store: Store,
    spaces: Sequence[str],
    size: int,
    rng: np.random.Generator,
    query_encoder: QueryEncoder | None,
    queries: Sequence[str] | None,
) -> tuple[dict[str, Drawn], int]:
    """Pass 1: the banks of every space that holds vectors, and the store's point count."""
    gallery = {s: _Reservoir(size, rng) for s in spaces}
    alt = {s: _Reservoir(size, rng) for s in spaces}  # query bank of a space without a query encoder
    texts = {s: _Reservoir(size, rng) for s in spaces}
    points = 0
    for item in store.scroll(with_vectors=True):
        points += 1
        pid = str(item["id"])
        text = (item.get("payload") or {}).get("text")
        has_text = isinstance(text, str) and len(text.strip()) >= MIN_CHARS
        for space in spaces:
            v = _dense(item, space)
            if v is None:
                continue
            for res in (gallery[space], alt[space]):
                slot = res.slot()
                if slot >= 0:
                    res.put(slot, (pid, np.asarray(v, dtype=np.float32)))
            if has_text:
                slot = texts[space].slot()
                if slot >= 0:
                    texts[space].put(slot, (pid, pseudo_query(str(text), float(rng.random()))))
    out: dict[str, Drawn] = {}
    for space in spaces:
        if not gallery[space].items:
            continue
        g_src = [pid for pid, _ in gallery[space].items]
        g_bank = _unit(np.stack([v for _, v in gallery[space].items]))
        q_bank, q_src, how = _query_bank(
            space, g_bank.shape[1], size, rng, query_encoder, queries, texts[space]
        )
        if q_bank is None:
            q_src = [pid for pid, _ in alt[space].items]
            q_bank, how = _unit(np.stack([v for _, v in alt[space].items])), "vectors"
        out[space] = Drawn(g_bank.shape[1], q_bank, q_src, g_bank, g_src, how)
    return out, points


def _query_bank(
    space: str,
    dim: int,
    size: int,
    rng: np.random.Generator,
    encoder: QueryEncoder | None,
    queries: Sequence[str] | None,
    texts: _Reservoir,
) -> tuple[np.ndarray | None, list[str | None], str]:
    """User queries or sampled sentences embedded as queries of `space`; None when it has no encoder."""
    if queries is not None:
        if encoder is None:
            raise MMRAGError("hubness: a query list for the query bank needs a query encoder")
        given = [q for q in queries if q.strip()]
        pick = sorted(rng.choice(len(given), size, replace=False)) if len(given) > size else range(len(given))
        batch, src, how = [given[i] for i in pick], [None] * len(pick), "queries"
    elif encoder is not None and texts.items:
        batch, src, how = [t for _, t in texts.items], [pid for pid, _ in texts.items], "sentences"
    else:
        return None, [], ""
    vecs = encoder(space, batch)
    if vecs is None:
        return None, [], ""
    vecs = np.asarray(vecs, dtype=np.float32)
    if vecs.ndim != 2 or vecs.shape != (len(batch), dim):
        raise MMRAGError(
            f"hubness: the query encoder gave shape {vecs.shape} for {len(batch)} texts of the "
            f"{space!r} space (dim {dim})"
        )
    return _unit(vecs), list(src), how


class _TopK:
    """Running top-k (values and global positions) of each row over blocks of columns."""

    def __init__(self, rows: int, k: int) -> None:
        self.k = k
        self.vals = np.full((rows, k), -np.inf)
        self.pos = np.full((rows, k), -1, dtype=np.int64)

    def update(self, s: np.ndarray, offset: int) -> None:
        if self.k == 1:  # the usual case: a running argmax
            best = s.argmax(axis=1)
            vals = s[np.arange(len(s)), best]
            better = vals > self.vals[:, 0]
            self.vals[better, 0] = vals[better]
            self.pos[better, 0] = best[better] + offset
            return
        kk = min(self.k, s.shape[1])
        part = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        vals = np.concatenate([self.vals, np.take_along_axis(s, part, 1)], axis=1)
        pos = np.concatenate([self.pos, part + offset], axis=1)
        keep = np.argpartition(-vals, self.k - 1, axis=1)[:, : self.k]
        self.vals = np.take_along_axis(vals, keep, 1)
        self.pos = np.take_along_axis(pos, keep, 1)

    def members(self, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=bool)
        out[self.pos[np.isfinite(self.vals) & (self.pos >= 0)]] = True
        return out


def _rows_by_source(src: Sequence[str | None]) -> dict[str, list[int]]:
    rows: dict[str, list[int]] = {}
    for i, pid in enumerate(src):
        if pid is not None:
            rows.setdefault(pid, []).append(i)
    return rows


def block_stats(
    bank: np.ndarray, rows_of: dict[str, list[int]], beta: float, ids: Sequence[str], x: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Log normalisers log sum_b exp(beta s(b, x_j)) of a block, and its similarities, both with the
    bank entries drawn from x_j left out (-inf; a point left with no entry gets -inf)."""
    s = (bank @ x.T).astype(np.float64)
    rows, cols = [], []
    for col, pid in enumerate(ids):
        for row in rows_of.get(pid, ()):
            rows.append(row)
            cols.append(col)
    if rows:
        s[rows, cols] = -np.inf
    with np.errstate(divide="ignore"):
        if beta == 0.0:  # a switched-off bank: log of the number of entries left
            return np.log(np.isfinite(s).sum(axis=0).astype(np.float64)), s
        m = s.max(axis=0)
        m = np.where(np.isfinite(m), m, 0.0)
        t = s - m
        t *= beta
        np.exp(t, out=t)
        return beta * m + np.log(t.sum(axis=0)), s


class _Space:
    """Pass-2 accumulator of one space."""

    def __init__(self, d: Drawn, betas: tuple[float, float], k: int) -> None:
        self.d = d
        self.betas = betas
        self.src = (_rows_by_source(d.query_src), _rows_by_source(d.gallery_src))
        self.top = (_TopK(len(d.query_bank), k), _TopK(len(d.gallery_bank), k))
        self.ids: list[np.ndarray] = []
        self.logs: tuple[list[np.ndarray], list[np.ndarray]] = ([], [])
        self.n = 0
        self.buf_ids: list[str] = []
        self.buf_vecs: list[Any] = []

    def add(self, pid: str, vec: Any) -> None:
        self.buf_ids.append(pid)
        self.buf_vecs.append(vec)
        if len(self.buf_ids) >= BATCH:
            self.flush()

    def flush(self) -> None:
        if not self.buf_ids:
            return
        x = _unit(np.asarray(self.buf_vecs, dtype=np.float32))
        banks = (self.d.query_bank, self.d.gallery_bank)
        for b in range(2):
            lse, s = block_stats(banks[b], self.src[b], self.betas[b], self.buf_ids, x)
            self.logs[b].append(lse)
            self.top[b].update(s, self.n)
        self.ids.append(np.array([pid.encode() for pid in self.buf_ids]))
        self.n += len(self.buf_ids)
        self.buf_ids, self.buf_vecs = [], []

    def result(self) -> SpaceBanks:
        self.flush()
        ids = np.concatenate(self.ids)
        order = np.argsort(ids, kind="stable")
        logs = [_fill_empty(np.concatenate(parts))[order] for parts in self.logs]
        acts = [t.members(self.n)[order] for t in self.top]
        d = self.d
        return SpaceBanks(
            ids[order],
            logs[0],
            logs[1],
            acts[0],
            acts[1],
            d.query_bank,
            d.gallery_bank,
            d.query_source,
            query_src=np.array([(pid or "").encode() for pid in d.query_src]),
            gallery_src=np.array([pid.encode() for pid in d.gallery_src]),
        )


def _fill_empty(lse: np.ndarray) -> np.ndarray:
    """A point whose every bank entry was left out (a store no larger than one point) gets the median."""
    ok = np.isfinite(lse)
    if ok.all():
        return lse
    return np.where(ok, lse, float(np.median(lse[ok])) if ok.any() else 0.0)


def bank_statistics(
    store: Store, drawn: dict[str, Drawn], beta_query: float, beta_gallery: float, k: int
) -> dict[str, SpaceBanks]:
    """Pass 2: every point's normalisers and activation flags, per space."""
    acc = {s: _Space(d, (beta_query, beta_gallery), k) for s, d in drawn.items()}
    if not acc:
        return {}
    for item in store.scroll(with_vectors=True):
        for space, a in acc.items():
            v = _dense(item, space)
            if v is not None:
                a.add(str(item["id"]), v)
    # a space emptied between the two passes has nothing to correct
    return {space: a.result() for space, a in acc.items() if a.n or a.buf_ids}


def build_banks(
    store: Store,
    spaces: Sequence[str],
    size: int,
    index_dir: Path,
    query_encoder: QueryEncoder | None = None,
    seed: int = 0,
    *,
    queries: Sequence[str] | None = None,
    beta_query: float = BETA_QUERY,
    beta_gallery: float = BETA_GALLERY,
    activation_k: int = ACTIVATION_K,
    method: Method = DEFAULT_METHOD,
) -> HubnessBanks:
    """Draw the query and gallery banks of each dense space, compute every point's statistics, save.

    Two passes over the store (`scroll` with vectors): one samples the banks, one computes the
    normalisers in blocks of `BATCH` points, so memory stays O(bank size x block + points) at any
    store size. Spaces with no stored vector are left out.

    Args:
        store: The index's store.
        spaces: Dense spaces to correct (e.g. `store.schema.dense`).
        size: Points per bank (and per space); a smaller store puts every point in the banks.
        index_dir: Where `hubness.npz` goes.
        query_encoder: `(space, texts) -> vectors` embedding texts as queries of that space (None,
            or a None result: the query bank is sampled stored vectors).
        seed: Seed of the sampling.
        queries: Query texts to use as the query bank instead of sentences of the stored texts.
        beta_query: b1, the query bank's inverse temperature.
        beta_gallery: b2, the gallery bank's inverse temperature.
        activation_k: Neighbours of each bank entry that form the DualDIS activation sets.
        method: The method `adjust` uses by default (`dualis` or `dualdis`).

    Returns:
        The banks (also written to `index_dir/hubness.npz`).
    """
    if size < 1:
        raise MMRAGError(f"hubness bank size must be at least 1, got {size}")
    if activation_k < 1:
        raise MMRAGError(f"hubness activation_k must be at least 1, got {activation_k}")
    if method not in METHODS:
        raise MMRAGError(f"unknown hubness method {method!r}: choose from {', '.join(METHODS)}")
    if queries is not None and not [q for q in queries if q.strip()]:
        raise MMRAGError("hubness: the query list given for the query bank is empty")
    rng = np.random.default_rng(seed)
    drawn, store_points = draw_banks(store, spaces, size, rng, query_encoder, queries)
    stats = bank_statistics(store, drawn, beta_query, beta_gallery, activation_k)
    banks = HubnessBanks(
        stats,
        beta_query=float(beta_query),
        beta_gallery=float(beta_gallery),
        activation_k=int(activation_k),
        method=method,
        size=int(size),
        seed=int(seed),
        store_points=store_points,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    banks.save(index_dir)
    return banks


def build_index_banks(store: Store, embedders: Embedders, size: int, index_dir: Path) -> None:
    """The banks of every dense space a text query reaches: `text`, and `image` when it is text-aligned."""

    def encode(space: str, texts: list[str]) -> np.ndarray:
        return np.stack(embedders.text_vectors(texts, space))

    aligned = aligned_image_space(embedders.cfg.image)
    spaces = [s for s in store.schema.dense if s == "text" or (s == "image" and aligned)]
    build_banks(store, spaces, size, index_dir, encode)
