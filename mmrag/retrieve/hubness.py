"""Hubness correction of dense similarities: Dual Bank Normalisation (DBNorm).

A few stored points ("hubs") sit where queries tend to fall and come back as neighbours of many
unrelated queries. DBNorm (Wang, Jian and Xue, "Balance Act: Mitigating Hubness in Cross-Modal
Retrieval with Query and Gallery Banks", EMNLP 2023, arXiv:2310.11612; code in
github.com/yimuwangcs/Better_Cross_Modal_Retrieval, `DBNorm/dbnorm.py`) rescales the similarity
s(q, g) of a query q and a stored point g by how close g is to a *query bank* B_q (stand-in queries)
and to a *gallery bank* B_g (sampled stored points): the paper shows a hub is close to both.

Dual inverted softmax (DualIS), with inverse temperatures b1 (query bank) and b2 (gallery bank):

    s'(q, g) =  exp(b1 s(q, g)) / sum_{q' in B_q} exp(b1 s(q', g))
              * exp(b2 s(q, g)) / sum_{g' in B_g} exp(b2 s(g', g))

Dual dynamic inverted softmax (DualDIS) applies each factor only when the query's top-1 point lies in
that bank's activation set A_B, the points among the top-k neighbours of some bank entry (k = 1, as
in the dynamic inverted softmax of QB-Norm, Bogolin et al., CVPR 2022); otherwise the factor is s:

    f_B(q, g) = exp(b s(q, g)) / sum_{b' in B} exp(b s(b', g))   if argmax_g s(q, g) in A_B
              = s(q, g)                                           otherwise
    s'(q, g)  = f_{B_q}(q, g) * f_{B_g}(q, g)

All but s(q, g) depends on g alone, so `build_banks` (in `mmrag.retrieve.banks`) computes, once per
index, each point's log normalisers L_q(g) = log sum_{q'} exp(b1 s(q', g)) and
L_g(g) = log sum_{g'} exp(b2 s(g', g)) and its two activation flags; `HubnessBanks.adjust` then
costs O(candidates). It returns log s' (the same order as s', on a scale that score fusion can use):
(b1 + b2) s - L_q - L_g for DualIS, with a factor that is not applied contributing log s (floored at
1e-6) for DualDIS.

Choices of ours (the paper draws both banks from a training split that an index does not have):
- gallery bank: a uniform sample of `size` stored vectors of the space;
- query bank: one sentence from each of `size` uniformly sampled points that carry a payload `text`,
  embedded by `query_encoder(space, sentences)` (the model that embeds queries for that space), or
  user-given query texts (`queries=`); a space without a query encoder gets a second uniform sample of
  its stored vectors (right for image-to-image search);
- leave-one-out: a bank entry drawn from point g is left out of g's own normalisers and activation,
  or every sampled point would be demoted for resembling itself;
- points the banks do not know (indexed after they were built) get the median normalisers of the
  known points and are never activated: they are scored as a typical point;
- b1 = 0 or b2 = 0 turns that bank off (the formula makes its factor the constant 1/|B|; we drop it,
  leave-one-out included): b2 = 0 is QB-Norm's inverted softmax (DualDIS: its dynamic version), and
  b1 = b2 = 0 leaves the ranking as it was.
The released `dbnorm.py` passes the gallery-bank similarities as the numerator of the query-bank
factor (the test query-gallery matrix is never read); we follow the formula above.
"""

from __future__ import annotations

import json
import os
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.store.base import ScoredPoint, SearchFilter, Store

FILE = "hubness.npz"
FORMAT = 1
Method = Literal["dualis", "dualdis"]
METHODS: tuple[Method, ...] = ("dualis", "dualdis")
# The arrays of a space in the file, saved as `<space>__<name>`.
ARRAYS = ("ids", "log_q", "log_g", "act_q", "act_g", "query_bank", "gallery_bank", "query_src", "gallery_src")
# Inverse temperatures picked on MultiHop-RAG dev with MiniLM, banks holding every point
# (bench/hubness.py): b1 in 1-10 with b2 in 0-10 is a plateau there, b >= 20 over-corrects. They
# scale with how widely the embedder's cosines spread; retune them for another model.
BETA_QUERY = 10.0
BETA_GALLERY = 5.0
ACTIVATION_K = 1
DEFAULT_METHOD: Method = "dualis"
# Floor of s in the log of DualDIS's raw factor (cosine can be <= 0 far from the query).
EPS = 1e-6
# (space, texts) -> their query embeddings in that space, or None when the space has no text side.
QueryEncoder = Callable[[str, list[str]], "np.ndarray | None"]


@dataclass
class SpaceBanks:
    """The banks of one dense space and the statistics of every point it held (rows sorted by id).

    Attributes:
        ids: Point ids as ASCII bytes, sorted (binary search at query time).
        log_q: L_q(g), the log query-bank normaliser of each point.
        log_g: L_g(g), the log gallery-bank normaliser of each point.
        act_q: Whether the point is among the top-k neighbours of some query-bank entry.
        act_g: Whether the point is among the top-k neighbours of some gallery-bank entry.
        query_bank: The query-bank vectors (L2-normalised).
        gallery_bank: The gallery-bank vectors (L2-normalised).
        query_source: `sentences`, `queries` (user-given) or `vectors` (sampled stored vectors).
        query_src: Id of the point each query-bank entry was drawn from (b"" for a user query).
        gallery_src: Id of the point each gallery-bank entry is.
    """

    ids: np.ndarray
    log_q: np.ndarray
    log_g: np.ndarray
    act_q: np.ndarray
    act_g: np.ndarray
    query_bank: np.ndarray
    gallery_bank: np.ndarray
    query_source: str
    query_src: np.ndarray
    gallery_src: np.ndarray
    median_q: float = field(init=False)
    median_g: float = field(init=False)

    def __post_init__(self) -> None:
        self.median_q = float(np.median(self.log_q)) if len(self.log_q) else 0.0
        self.median_g = float(np.median(self.log_g)) if len(self.log_g) else 0.0

    @property
    def dim(self) -> int:
        return int(self.gallery_bank.shape[1])

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        """The row of each id, -1 where the banks do not know it."""
        out = np.full(len(ids), -1, dtype=np.int64)
        if not len(ids) or not len(self.ids):
            return out
        keys = np.array([str(i).encode() for i in ids])
        pos = np.minimum(np.searchsorted(self.ids, keys), len(self.ids) - 1)
        hit = self.ids[pos] == keys
        out[hit] = pos[hit]
        return out


@dataclass
class HubnessBanks:
    """DBNorm banks of an index, one `SpaceBanks` per dense space, with the temperatures they used."""

    spaces: dict[str, SpaceBanks]
    beta_query: float = BETA_QUERY
    beta_gallery: float = BETA_GALLERY
    activation_k: int = ACTIVATION_K
    method: Method = DEFAULT_METHOD
    size: int = 0
    seed: int = 0
    store_points: int = 0
    created_at: str = ""

    # -- query time ---------------------------------------------------------------------------------
    def has(self, space: str) -> bool:
        """Whether the banks cover `space` (a space without stored vectors has none)."""
        return space in self.spaces

    def adjust(
        self,
        space: str,
        query_vec: np.ndarray,
        ids: Sequence[str],
        sims: np.ndarray,
        method: Method | None = None,
    ) -> np.ndarray:
        """Corrected scores (log s', see the module docstring) of candidate points of one query.

        Args:
            space: The dense space the similarities come from.
            query_vec: The query vector (its dim is checked against the banks).
            ids: Candidate point ids; ids the banks do not know get the median normalisers.
            sims: Their cosine similarities to the query, as the store returned them. DualDIS reads
                the query's top-1 point as the best of these, so pass the nearest candidates.
            method: `dualis` or `dualdis`; default the method recorded in the banks.

        Returns:
            One float per candidate, higher is better; `sims` unchanged for a space without banks.
        """
        s = np.asarray(sims, dtype=np.float64).reshape(-1)
        if len(ids) != len(s):
            raise MMRAGError(f"hubness: {len(ids)} ids but {len(s)} similarities")
        sb = self.spaces.get(space)
        if sb is None or not len(s):
            return s.copy()
        method = method or self.method
        if method not in METHODS:
            raise MMRAGError(f"unknown hubness method {method!r}: choose from {', '.join(METHODS)}")
        dim = int(np.asarray(query_vec).size)
        if dim != sb.dim:
            raise MMRAGError(f"hubness: query vector has dim {dim}, the {space!r} banks have {sb.dim}")
        rows = sb.rows(ids)
        known = rows >= 0
        r = np.where(known, rows, 0)
        log_q = np.where(known, sb.log_q[r], sb.median_q)
        log_g = np.where(known, sb.log_g[r], sb.median_g)
        top = int(np.argmax(s))
        out = np.zeros_like(s)
        for beta, log_z, act in ((self.beta_query, log_q, sb.act_q), (self.beta_gallery, log_g, sb.act_g)):
            if beta == 0.0:
                continue  # the bank is off (its factor is a constant 1/|B| up to leave-one-out)
            if method == "dualdis" and not (known[top] and act[rows[top]]):
                out += np.log(np.maximum(s, EPS))
            else:
                out += beta * s - log_z
        return out

    @classmethod
    def need_building(cls, index_dir: str | Path, size: int, store_points: int) -> bool:
        """Whether an index's banks must be (re)built: missing, drawn at another `size`, or `stale`.

        Rebuilding costs two scrolls over the store, so it is done only then.
        """
        banks = cls.load(index_dir)
        return banks is None or banks.size != size or banks.stale(store_points)

    def stale(self, store_points: int, tolerance: float = 0.1) -> bool:
        """Whether the store grew or shrank by more than `tolerance` since the banks were built."""
        return abs(store_points - self.store_points) > tolerance * max(self.store_points, 1)

    # -- persistence --------------------------------------------------------------------------------
    def meta(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "beta_query": self.beta_query,
            "beta_gallery": self.beta_gallery,
            "activation_k": self.activation_k,
            "size": self.size,
            "seed": self.seed,
            "store_points": self.store_points,
            "created_at": self.created_at,
            "spaces": {
                name: {
                    "points": len(sb.ids),
                    "dim": sb.dim,
                    "query_bank": len(sb.query_bank),
                    "gallery_bank": len(sb.gallery_bank),
                    "query_source": sb.query_source,
                }
                for name, sb in self.spaces.items()
            },
        }

    def save(self, index_dir: str | Path) -> Path:
        """Write `index_dir/hubness.npz` through a temporary file and an atomic rename."""
        path = Path(index_dir) / FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, np.ndarray] = {"meta": np.array(json.dumps(self.meta()))}
        for name, sb in self.spaces.items():
            for key in ARRAYS:
                arrays[f"{name}__{key}"] = getattr(sb, key)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, index_dir: str | Path) -> HubnessBanks | None:
        """The banks saved in `index_dir`, or None when it has none.

        Raises:
            MMRAGError: The file is unreadable or of another format (naming the file).
        """
        path = Path(index_dir) / FILE
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                if meta.get("format") != FORMAT:
                    raise ValueError(f"format {meta.get('format')!r}, this version reads {FORMAT}")
                spaces = {
                    name: SpaceBanks(
                        **{key: z[f"{name}__{key}"] for key in ARRAYS},
                        query_source=str(info.get("query_source", "")),
                    )
                    for name, info in meta["spaces"].items()
                }
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as e:
            raise MMRAGError(
                f"{path}: unreadable hubness banks ({e}); delete it, or rebuild it by indexing with "
                "ingest.hubness_bank > 0"
            ) from e
        keys = ("method", "beta_query", "beta_gallery", "activation_k", "size", "seed", "store_points")
        return cls(spaces, created_at=str(meta.get("created_at", "")), **{k: meta[k] for k in keys})


def corrected_search(
    store: Store,
    banks: HubnessBanks | None,
    space: str,
    query_vec: np.ndarray,
    limit: int,
    flt: SearchFilter | None = None,
    candidates: int = 100,
    method: Method | None = None,
) -> list[ScoredPoint]:
    """Nearest points of one dense space, rescored by the banks and re-sorted.

    Fetches `max(candidates, limit)` nearest points under `flt`, corrects their scores with
    `banks.adjust` and returns the best `limit` (scores are log s'). A hub can only be demoted
    within the candidates, so `candidates` should be a few times `limit`. Without banks for the
    space, the store's own top `limit` (cosine scores) comes back.
    """
    from mmrag.store.base import Prefetch, ScoredPoint

    n = max(int(candidates), int(limit))
    points = store.query([Prefetch(space, dense=query_vec, limit=n)], limit=n, flt=flt)
    if banks is None or space not in banks.spaces or not points:
        return points[:limit]
    sims = np.array([p.score for p in points], dtype=np.float64)
    new = banks.adjust(space, query_vec, [p.id for p in points], sims, method)
    order = np.argsort(-new, kind="stable")[:limit]
    return [ScoredPoint(points[i].id, float(new[i]), points[i].payload) for i in order]


def k_occurrence_skewness(neighbours: Iterable[Sequence[str]], gallery_size: int) -> float:
    """Skewness of the k-occurrence N_k(x) over all `gallery_size` points (zeros included).

    N_k(x) counts the queries whose k nearest neighbours (`neighbours`, one list per query) contain
    x; its skewness is the usual hubness measure (Radovanovic et al., JMLR 2010): 0 when every point
    is retrieved equally often, large when a few hubs take many queries.
    """
    counts = Counter(i for row in neighbours for i in row)
    if len(counts) > gallery_size:
        raise MMRAGError(f"{len(counts)} distinct neighbours but a gallery of {gallery_size}")
    n = np.zeros(gallery_size, dtype=np.float64)
    n[: len(counts)] = list(counts.values())
    sd = float(n.std())
    if gallery_size == 0 or sd == 0.0:
        return 0.0
    return float(((n - n.mean()) ** 3).mean() / sd**3)
