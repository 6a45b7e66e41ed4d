"""The `Store` contract, run against both backends: EdgeStore (a shard in tmp_path) and ClientStore
(qdrant-client local mode in memory)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from mmrag.encoders.bm25 import Bm25Encoder
from mmrag.store import (
    PointData,
    Prefetch,
    SearchFilter,
    SearchOptions,
    Store,
    StoreSchema,
    open_store,
    point_id,
)
from mmrag.store.edge import EdgeStore
from mmrag.store.server import ClientStore
from mmrag.types import IndexLockedError, IndexMismatchError, MMRAGError

SCHEMA = StoreSchema(dense={"image": 8, "text": 4})
TEXTS = [
    "a red fox jumps over the fence",
    "quarterly revenue grew in the third quarter",
    "the cat sleeps on a warm windowsill",
    "volcanic eruptions reshape the island",
    "a recipe for sourdough bread",
    "penguins huddle against the antarctic wind",
]


def _unit(rng: np.random.Generator, dim: int) -> np.ndarray:
    v = rng.normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def make_points(n: int = 6, seed: int = 0) -> list[PointData]:
    """Points of every modality; odd points lack the `text` vector, point 5 has no `image` vector."""
    rng = np.random.default_rng(seed)
    bm25 = Bm25Encoder()
    sparse = bm25.embed_documents(TEXTS[:n])
    modalities = ["image", "page", "video", "text"]
    points = []
    for i in range(n):
        dense = {"image": _unit(rng, 8)}
        if i % 2 == 0:
            dense["text"] = _unit(rng, 4)
        if i == 5:
            del dense["image"]
        payload: dict = {"modality": modalities[i % 4], "path": f"/data/f{i % 3}.bin", "text": TEXTS[i]}
        if payload["modality"] == "page":
            payload["page"] = i
        if payload["modality"] == "video":
            payload["t_start"], payload["t_end"] = 10.0 * i, 10.0 * i + 10.0
        points.append(PointData(id=point_id(f"hash{i}", ""), dense=dense, sparse=sparse[i], payload=payload))
    return points


@pytest.fixture(params=["edge", "client"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return str(request.param)


def open_backend(kind: str, tmp_path: Path, schema: StoreSchema = SCHEMA) -> Store:
    if kind == "edge":
        return EdgeStore(tmp_path / "store", schema)
    return ClientStore(":memory:", schema)


@pytest.fixture
def store(backend: str, tmp_path: Path):
    s = open_backend(backend, tmp_path)
    s.upsert(make_points())
    yield s
    s.close()


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def test_upsert_overwrites_same_id(store: Store):
    pts = make_points()
    assert store.count() == len(pts)
    first = pts[0]
    changed = PointData(first.id, first.dense, first.sparse, payload={**first.payload, "v": 2})
    store.upsert([changed, changed])
    assert store.count() == len(pts)
    payloads = {p["id"]: p["payload"] for p in store.scroll()}
    assert payloads[pts[0].id]["v"] == 2


def test_missing_named_vectors(store: Store):
    vectors = {p["id"]: p["vectors"] for p in store.scroll(with_vectors=True)}
    pts = make_points()
    assert "text" not in vectors[pts[1].id]
    assert "image" not in vectors[pts[5].id]
    # A point without a `text` vector can never come back from a `text` search.
    hits = store.query([Prefetch("text", dense=pts[0].dense["text"])], limit=10)
    assert pts[1].id not in ids(hits)
    assert set(ids(hits)) == {p.id for p in pts if "text" in p.dense}


def test_dense_query_ranks_nearest_first(store: Store):
    pts = make_points()
    for target in (pts[2], pts[3]):
        q = target.dense["image"] + 0.05 * np.random.default_rng(1).normal(size=8).astype(np.float32)
        hits = store.query([Prefetch("image", dense=q / np.linalg.norm(q))], limit=3)
        assert hits[0].id == target.id
        assert hits[0].payload["text"] == target.payload["text"]
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_sparse_bm25_query(store: Store):
    pts = make_points()
    q = Bm25Encoder().embed_query("Which volcano erupted?")
    hits = store.query([Prefetch("bm25", sparse=q)], limit=3)
    assert hits[0].id == pts[3].id
    # Only documents sharing a token score at all.
    assert len(hits) == 1


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_hybrid_fusion(store: Store, fusion: str):
    pts = make_points()
    # The dense query points at point 0; the words at point 4 (bread): both must be in the fused top 2.
    prefetches = [
        Prefetch("image", dense=pts[0].dense["image"], limit=3),
        Prefetch("bm25", sparse=Bm25Encoder().embed_query("sourdough bread recipe"), limit=3),
    ]
    hits = store.query(prefetches, limit=2, fusion=fusion)  # type: ignore[arg-type]
    assert set(ids(hits)) == {pts[0].id, pts[4].id}


def test_both_backends_fuse_alike(tmp_path: Path):
    pts = make_points()
    prefetches = [
        Prefetch("image", dense=pts[2].dense["image"], limit=4),
        Prefetch("text", dense=pts[4].dense["text"], limit=4),
        # "sleeping cat" matches one doc twice, "fox" another once: no tied BM25 scores, whose order
        # the backends break differently (edge even varies run to run).
        Prefetch("bm25", sparse=Bm25Encoder().embed_query("the sleeping cat and the fox"), limit=4),
    ]
    results = []
    for kind in ("edge", "client"):
        with open_backend(kind, tmp_path) as s:
            s.upsert(pts)
            # limit above the point count: every candidate comes back, so ties cannot cut differently
            results.append(
                {f: {h.id: h.score for h in s.query(prefetches, limit=10, fusion=f)} for f in ("rrf", "dbsf")}
            )
    for fusion in ("rrf", "dbsf"):
        edge, client = results[0][fusion], results[1][fusion]
        assert edge.keys() == client.keys()
        for pid in edge:
            assert edge[pid] == pytest.approx(client[pid], rel=1e-4), (fusion, pid)


def test_filters(store: Store):
    pts = make_points()
    q = [Prefetch("image", dense=pts[0].dense["image"])]
    by_mod = store.query(q, limit=10, flt=SearchFilter(modalities=["page", "video"]))
    assert {h.payload["modality"] for h in by_mod} == {"page", "video"}
    assert store.count(SearchFilter(modalities=["page", "video"])) == 3
    by_path = store.query(q, limit=10, flt=SearchFilter(paths=["/data/f1.bin"]))
    assert set(ids(by_path)) == {pts[1].id, pts[4].id}
    # Points 1 and 5 are pages 1 and 5; the range keeps page 5 (it has no dense vector: ask BM25).
    words = [Prefetch("bm25", sparse=Bm25Encoder().embed_query("the fox, the cat and the penguins"))]
    assert set(ids(store.query(words, limit=10))) == {pts[0].id, pts[2].id, pts[5].id}
    assert ids(store.query(words, limit=10, flt=SearchFilter(page_min=2, page_max=5))) == [pts[5].id]
    assert store.count(SearchFilter(page_min=2, page_max=5)) == 1
    assert store.count(SearchFilter(page_min=1, page_max=1)) == 1
    # The video clip of point 2 spans [20, 30]: overlapping ranges match, disjoint ones do not.
    assert store.count(SearchFilter(t_min=25.0, t_max=40.0)) == 1
    assert store.count(SearchFilter(t_min=0.0, t_max=20.0)) == 1
    assert store.count(SearchFilter(t_min=31.0)) == 0
    assert store.count(SearchFilter(t_max=19.9)) == 0
    # Filters apply inside every prefetch of a fused query.
    hybrid = store.query(
        q + [Prefetch("bm25", sparse=Bm25Encoder().embed_query("fox cat bread penguins"))],
        limit=10,
        flt=SearchFilter(modalities=["image"]),
    )
    assert set(ids(hybrid)) == {pts[0].id, pts[4].id}


def test_delete_by_path(store: Store):
    store.delete_by_path("/data/f0.bin")
    assert store.count() == 4
    assert store.count(SearchFilter(paths=["/data/f0.bin"])) == 0
    assert all(p["payload"]["path"] != "/data/f0.bin" for p in store.scroll())


def test_delete_ids(store: Store):
    pts = make_points()
    store.delete_ids([pts[1].id, pts[2].id, point_id("never", "stored")])
    assert {r["id"] for r in store.scroll()} == {p.id for i, p in enumerate(pts) if i not in (1, 2)}
    store.delete_ids([])
    assert store.count() == 4


def test_scroll_with_vectors(store: Store):
    pts = {p.id: p for p in make_points()}
    rows = list(store.scroll(with_vectors=True))
    assert len(rows) == len(pts)
    for row in rows:
        src = pts[row["id"]]
        for name, vec in src.dense.items():
            np.testing.assert_allclose(row["vectors"][name], vec, atol=1e-5)
        assert sorted(row["vectors"]["bm25"].indices) == sorted(src.sparse.indices)
    assert len(list(store.scroll(SearchFilter(modalities=["text"])))) == 1


def test_scroll_pages_past_one_batch(backend: str, tmp_path: Path):
    rng = np.random.default_rng(3)
    pts = [
        PointData(id=point_id("h", str(i)), dense={"image": _unit(rng, 8)}, payload={"path": "p"})
        for i in range(600)
    ]
    with open_backend(backend, tmp_path) as s:
        s.upsert(pts)
        assert len({r["id"] for r in s.scroll()}) == 600


def test_bad_input_is_named(store: Store):
    with pytest.raises(MMRAGError, match="dim 5"):
        store.upsert([PointData(id=point_id("x", ""), dense={"image": np.ones(5, dtype=np.float32)})])
    with pytest.raises(MMRAGError, match="unknown vector space 'audio'"):
        store.query([Prefetch("audio", dense=np.ones(8, dtype=np.float32))], limit=1)
    with pytest.raises(MMRAGError, match="exactly one"):
        store.query([Prefetch("image")], limit=1)


def test_edge_persists_across_reopen(tmp_path: Path):
    pts = make_points()
    s = open_store(tmp_path, SCHEMA)
    assert isinstance(s, EdgeStore)
    s.upsert(pts)
    s.flush()
    s.close()
    with open_store(tmp_path, SCHEMA) as s2:
        assert s2.count() == len(pts)
        assert s2.count(SearchFilter(modalities=["video"])) == 1
        hits = s2.query([Prefetch("image", dense=pts[3].dense["image"])], limit=1)
        assert hits[0].id == pts[3].id


def test_edge_rejects_other_schema_and_second_open(tmp_path: Path):
    EdgeStore(tmp_path / "store", SCHEMA).close()
    with pytest.raises(IndexMismatchError, match="image"):
        EdgeStore(tmp_path / "store", StoreSchema(dense={"image": 16, "text": 4}))
    with EdgeStore(tmp_path / "store", SCHEMA), pytest.raises(IndexLockedError):
        EdgeStore(tmp_path / "store", SCHEMA)


def test_edge_optimize_keeps_points_findable(tmp_path: Path):
    rng = np.random.default_rng(4)
    pts = [
        PointData(id=point_id("o", str(i)), dense={"image": _unit(rng, 8)}, payload={"path": str(i)})
        for i in range(300)
    ]
    with EdgeStore(tmp_path / "store", SCHEMA) as s:
        s.upsert(pts)
        s.optimize()
        s.upsert(pts[:10])  # after optimize, writes go to a fresh appendable segment
        assert s.count() == 300
        assert s.query([Prefetch("image", dense=pts[7].dense["image"])], limit=1)[0].id == pts[7].id


def test_edge_optimize_builds_hnsw(tmp_path: Path):
    """Above ~10 MB of vectors optimize() builds HNSW; its top-10 must agree with brute force."""
    rng = np.random.default_rng(5)
    centers = rng.normal(size=(20, 512)).astype(np.float32)
    # 6000 points and 20 held-out queries from one Gaussian mixture (queries look like the data)
    x = centers[rng.integers(0, 20, size=6020)] + 0.6 * rng.normal(size=(6020, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x, queries = x[:6000], x[6000:]
    pids = [point_id("h", str(i)) for i in range(len(x))]
    with EdgeStore(tmp_path / "store", StoreSchema(dense={"image": 512})) as s:
        s.upsert([PointData(id=pid, dense={"image": v}) for pid, v in zip(pids, x, strict=True)])
        assert s.shard.info().indexed_vectors_count == 0
        s.optimize()
        assert s.shard.info().indexed_vectors_count == 6000
        recall = []
        for q in queries:
            got = ids(s.query([Prefetch("image", dense=q)], limit=10))
            truth = {pids[i] for i in np.argsort(-(x @ q))[:10]}
            recall.append(len(set(got) & truth) / 10)
        assert np.mean(recall) >= 0.9


def _quantized_files(folder: Path) -> list[Path]:
    return [f for f in folder.rglob("quantized.data") if f.is_file()]


def test_edge_int8_quantization_and_hnsw_ef(tmp_path: Path):
    """int8 copies are built by optimize() (new shard, or an old one reopened with int8) and
    searched with rescoring: top-10 still agrees with brute force."""
    rng = np.random.default_rng(6)
    centers = rng.normal(size=(20, 512)).astype(np.float32)
    x = centers[rng.integers(0, 20, size=6020)] + 0.6 * rng.normal(size=(6020, 512)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x, queries = x[:6000], x[6000:]
    pids = [point_id("q", str(i)) for i in range(len(x))]
    schema = StoreSchema(dense={"image": 512})
    with EdgeStore(tmp_path / "plain", schema) as s:
        s.upsert([PointData(id=pid, dense={"image": v}) for pid, v in zip(pids, x, strict=True)])
        s.optimize()
    assert not _quantized_files(tmp_path / "plain")
    opts = SearchOptions(quantization="int8", hnsw_ef=64, oversampling=3.0)
    with EdgeStore(tmp_path / "plain", schema, opts) as s:
        s.optimize()
        assert _quantized_files(tmp_path / "plain")
        recall = []
        for q in queries:
            got = ids(s.query([Prefetch("image", dense=q)], limit=10))
            truth = {pids[i] for i in np.argsort(-(x @ q))[:10]}
            recall.append(len(set(got) & truth) / 10)
        assert np.mean(recall) >= 0.9
        # fused queries carry the same search params in their dense prefetches
        hits = s.query([Prefetch("image", dense=x[3]), Prefetch("image", dense=x[4])], limit=2)
        assert {h.id for h in hits} == {pids[3], pids[4]}


def test_search_options_are_checked():
    with pytest.raises(MMRAGError, match="hnsw_ef"):
        SearchOptions(hnsw_ef=0)
    with pytest.raises(MMRAGError, match="oversampling"):
        SearchOptions(oversampling=0.5)
    with pytest.raises(MMRAGError, match="quantization"):
        SearchOptions(quantization="int4")  # type: ignore[arg-type]


def test_client_schema_mismatch(tmp_path: Path):
    url = f"local:{tmp_path / 'qdrant'}"
    ClientStore(url, SCHEMA).close()
    with pytest.raises(IndexMismatchError, match=r"'text' has dim 4 in the collection, 6 in the schema"):
        ClientStore(url, StoreSchema(dense={"image": 8, "text": 6}))
    with pytest.raises(IndexMismatchError, match=r"'audio' .* missing"):
        ClientStore(url, StoreSchema(dense={"image": 8, "text": 4, "audio": 3}))
    with ClientStore(url, SCHEMA, collection="other") as other:
        assert other.count() == 0


def test_open_store_picks_backend(tmp_path: Path):
    with open_store(tmp_path, SCHEMA, url=":memory:", collection="c1", api_key="s3cret") as s:
        assert isinstance(s, ClientStore)
        assert s.collection == "c1"
        assert "s3cret" not in repr(s)
    with open_store(tmp_path, SCHEMA) as s:
        assert isinstance(s, EdgeStore)
    assert (tmp_path / "store" / "edge_config.json").is_file()


@pytest.mark.filterwarnings("ignore::UserWarning")  # key over plain http; no server version to check
def test_client_unreachable_server_is_named():
    with pytest.raises(MMRAGError, match=r"127\.0\.0\.1:1") as err:
        ClientStore("http://127.0.0.1:1", SCHEMA, api_key="s3cret")
    assert "s3cret" not in str(err.value)
    # qdrant-client checks the server version in a thread; let it warn while the filter holds
    for t in threading.enumerate():
        if t is not threading.main_thread() and "check_compatibility" in repr(getattr(t, "_target", "")):
            t.join(timeout=10)
