"""Multi-vector (late-interaction) spaces in both store backends: MaxSim scores equal the numpy
reference, the pooled-vector prefetch reranked by MaxSim, fusion with BM25, scroll round trips, and
patch pooling.

The server runs happen where a Qdrant server is available (`MMRAG_TEST_QDRANT_URL`, or the release
binary, see tests/test_store_server.py); elsewhere they skip saying so. qdrant-client's in-process
`:memory:` mode stands in for the server's request path everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from test_store_server import _server_store, qdrant_server  # noqa: F401  (fixture)

from mmrag.encoders.bm25 import Bm25Encoder
from mmrag.store import PointData, Prefetch, StoreSchema, point_id
from mmrag.store.base import Store
from mmrag.store.edge import EdgeStore
from mmrag.store.multivector import hierarchical_pool, maxsim, maxsim_rank, mean_vector, multi_bytes
from mmrag.store.server import ClientStore
from mmrag.types import IndexMismatchError, MMRAGError

DIM = 8
SCHEMA = StoreSchema(dense={"text": 4, "page_mean": DIM}, multi={"page": DIM})
WORDS = ["revenue", "table", "chart", "cash", "flow", "margin", "segment", "debt"]


def pages(n: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(int(rng.integers(3, 9)), DIM)).astype(np.float32) for _ in range(n)]


def points(docs: list[np.ndarray]) -> list[PointData]:
    bm25 = Bm25Encoder()
    texts = [f"{WORDS[i % len(WORDS)]} page {i}" for i in range(len(docs))]
    sparse = bm25.embed_documents(texts)
    return [
        PointData(
            point_id(f"pdf{i}", "page"),
            {"page": d, "page_mean": mean_vector(d), "text": np.eye(4, dtype=np.float32)[i % 4]},
            sparse[i],
            {"modality": "page", "path": f"/doc{i}.pdf", "page": i},
        )
        for i, d in enumerate(docs)
    ]


@pytest.fixture(params=["edge", "memory", "server"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s: Store
    if request.param == "edge":
        s = EdgeStore(tmp_path / "store", SCHEMA)
    elif request.param == "memory":
        s = ClientStore(":memory:", SCHEMA)
    else:
        s = _server_store(request.getfixturevalue("qdrant_server"), SCHEMA)
    yield s
    if isinstance(s, ClientStore) and not s._local:
        s.client.delete_collection(s.collection)
    s.close()


def test_maxsim_matches_numpy_and_prefetch_reranks(store: Store) -> None:
    docs = pages()
    store.upsert(points(docs))
    q = np.random.default_rng(7).normal(size=(3, DIM)).astype(np.float32)
    hits = store.query([Prefetch("page", dense=q, limit=12)], limit=12)
    by_page = {h.payload["page"]: h.score for h in hits}
    assert [h.payload["page"] for h in hits] == maxsim_rank(q, docs)
    for i, d in enumerate(docs):
        assert by_page[i] == pytest.approx(maxsim(q, d), abs=1e-4)
    # two stages: the pooled vector prefetches 5 candidates, MaxSim ranks them
    first = Prefetch("page_mean", dense=mean_vector(q), limit=5)
    staged = store.query([Prefetch("page", dense=q, limit=3, first=first)], limit=3)
    pooled = np.stack([mean_vector(d) for d in docs]) @ mean_vector(q)
    candidates = set(np.argsort(-pooled)[:5].tolist())
    want = [i for i in maxsim_rank(q, docs) if i in candidates][:3]
    assert [h.payload["page"] for h in staged] == want
    assert staged[0].score == pytest.approx(maxsim(q, docs[want[0]]), abs=1e-4)
    # fused with BM25 like any other space
    sparse = Bm25Encoder().embed_query("chart")
    assert sparse is not None
    late = Prefetch("page", dense=q, limit=12, first=first)
    fused = store.query([late, Prefetch("bm25", sparse=sparse)], 4)
    assert {h.payload["page"] for h in fused} & {2, 10}  # the BM25 hits for "chart"
    assert fused[0].payload["page"] in {want[0], 2, 10}


def test_scroll_returns_the_multivectors(store: Store) -> None:
    docs = pages(4)
    store.upsert(points(docs))
    rows = {r["payload"]["page"]: r["vectors"] for r in store.scroll(with_vectors=True)}
    for i, d in enumerate(docs):
        got = np.asarray(rows[i]["page"], dtype=np.float32)
        unit = d / np.linalg.norm(d, axis=1, keepdims=True)  # cosine spaces store unit rows
        assert got.shape == d.shape and np.allclose(got, unit, atol=1e-5)


def test_bad_multivectors_are_named(tmp_path: Path) -> None:
    with EdgeStore(tmp_path / "s", SCHEMA) as store:
        bad = points(pages(1))[0]
        bad.dense["page"] = np.zeros((3, DIM + 1), dtype=np.float32)
        with pytest.raises(MMRAGError, match="multi-vector 'page' has shape"):
            store.upsert([bad])
        with pytest.raises(MMRAGError, match="unknown vector space 'pages'"):
            store.query([Prefetch("pages", dense=np.ones((2, DIM)))], limit=1)
    # a store built without the page space refuses to open with it
    with EdgeStore(tmp_path / "t", StoreSchema(dense={"text": 4})):
        pass
    with pytest.raises(IndexMismatchError):
        EdgeStore(tmp_path / "t", SCHEMA)


def test_memory_collection_with_other_kind_is_refused() -> None:
    from mmrag.store.server_setup import schema_differences as _schema_differences

    with ClientStore(":memory:", SCHEMA, "c") as s:
        info = s.client.get_collection("c")
        assert _schema_differences(info, SCHEMA) == []
        flat = StoreSchema(dense={"text": 4, "page_mean": DIM, "page": DIM})
        assert any("multi-vector" in d or "single vector" in d for d in _schema_differences(info, flat))


def test_hierarchical_pooling() -> None:
    rng = np.random.default_rng(1)
    # 4 tight groups of 6 patches each, plus 3 prompt rows that must survive untouched
    centres = rng.normal(size=(4, DIM))
    patches = np.concatenate([c + 0.01 * rng.normal(size=(6, DIM)) for c in centres]).astype(np.float32)
    prompt = rng.normal(size=(3, DIM)).astype(np.float32)
    page = np.concatenate([patches, prompt])
    mask = np.array([True] * 24 + [False] * 3)
    pooled = hierarchical_pool(page, factor=6, pool=mask)
    assert pooled.shape == (4 + 3, DIM)
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1, atol=1e-5)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    assert np.allclose(pooled[4:], unit(prompt), atol=1e-6)
    # each pooled row is one of the group means: MaxSim barely moves for any query
    assert np.allclose(np.sort(unit(centres) @ pooled[:4].T, axis=1)[:, -1], 1, atol=1e-3)
    q = rng.normal(size=(5, DIM))
    assert maxsim(q, pooled) == pytest.approx(maxsim(q, page), abs=0.02)
    assert multi_bytes(pooled) == 7 * DIM * 4 and multi_bytes(page) == 27 * DIM * 4
    assert np.allclose(hierarchical_pool(page, 1), unit(page), atol=1e-6)
    with pytest.raises(MMRAGError):
        hierarchical_pool(page, 0)
