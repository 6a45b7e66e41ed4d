"""Dual-bank hubness correction: the banks' statistics against a naive reading of the paper's formula,
planted hubs, persistence, unknown ids and stores smaller than a bank."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

import mmrag.retrieve.banks as hb
from mmrag.retrieve.banks import build_banks
from mmrag.retrieve.hubness import FILE, HubnessBanks, corrected_search, k_occurrence_skewness
from mmrag.store.base import PointData, Store, StoreSchema, point_id
from mmrag.store.server import ClientStore
from mmrag.types import MMRAGError

DIM = 8


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_store(vectors: np.ndarray, texts: list[str] | None = None) -> Store:
    store = ClientStore(":memory:", StoreSchema(dense={"text": vectors.shape[1]}))
    points = [
        PointData(
            point_id("h", str(i)),
            {"text": v.astype(np.float32)},
            payload={"text": texts[i] if texts else None, "modality": "text"},
        )
        for i, v in enumerate(vectors)
    ]
    if points:
        store.upsert(points)
    return store


def text_encoder(dim: int):
    """A deterministic stand-in query encoder: a seeded random unit vector per text (as queries)."""

    def encode(space: str, texts: list[str]) -> np.ndarray:
        return np.stack([unit(np.random.default_rng(sum(t.encode())).normal(size=dim)) for t in texts])

    return encode


def stored(store: Store) -> dict[str, np.ndarray]:
    return {p["id"]: unit(np.asarray(p["vectors"]["text"])) for p in store.scroll(with_vectors=True)}


def naive_point_stats(
    points: dict[str, np.ndarray], bank: np.ndarray, src: list[bytes], beta: float, k: int
) -> tuple[dict[str, float], set[str]]:
    """log sum_b exp(beta s(b, g)) per point and the top-k activation set, leave-one-out, in loops."""
    logs = {}
    for pid, g in points.items():
        terms = [math.exp(beta * float(b @ g)) for b, s in zip(bank, src, strict=True) if s != pid.encode()]
        logs[pid] = math.log(sum(terms)) if terms else None
    known = [v for v in logs.values() if v is not None]
    med = float(np.median(known)) if known else 0.0
    active: set[str] = set()
    for b, s in zip(bank, src, strict=True):
        ranked = sorted((pid for pid in points if s != pid.encode()), key=lambda p: -float(b @ points[p]))
        active.update(ranked[:k])
    return {p: (v if v is not None else med) for p, v in logs.items()}, active


def naive_scores(banks: HubnessBanks, pts: dict[str, np.ndarray], q: np.ndarray, method: str) -> dict:
    """The paper's DualIS / DualDIS score s'(q, g) in the linear domain, over the whole gallery."""
    sb = banks.spaces["text"]
    b1, b2 = banks.beta_query, banks.beta_gallery
    lq, aq = naive_point_stats(pts, sb.query_bank, list(sb.query_src), b1, banks.activation_k)
    lg, ag = naive_point_stats(pts, sb.gallery_bank, list(sb.gallery_src), b2, banks.activation_k)
    sims = {p: float(q @ g) for p, g in pts.items()}
    top = max(sims, key=lambda p: sims[p])
    out = {}
    for p, s in sims.items():
        f_q = math.exp(b1 * s - lq[p])
        f_g = math.exp(b2 * s - lg[p])
        if method == "dualdis":
            f_q = f_q if top in aq else s
            f_g = f_g if top in ag else s
        # a zero temperature turns its bank off (the formula's factor would be the constant 1/|B|)
        out[p] = (f_q if b1 else 1.0) * (f_g if b2 else 1.0)
    return out


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hb, "BATCH", 7)  # several blocks, so the streaming merge is exercised


@pytest.mark.parametrize(
    ("source", "b2", "k"), [("sentences", 2.5, 2), ("vectors", 2.5, 1), ("vectors", 0.0, 1)]
)
def test_statistics_equal_naive_formula(
    tmp_path: Path, small_batches: None, source: str, b2: float, k: int
) -> None:
    rng = np.random.default_rng(1)
    vecs = unit(np.abs(rng.normal(size=(40, DIM))))  # positive cosines: DualDIS's raw factor has a log
    texts = [f"Point {i} says something long enough. A second sentence of point {i} here." for i in range(40)]
    store = make_store(vecs, texts)
    encoder = text_encoder(DIM) if source == "sentences" else None
    banks = build_banks(
        store, ["text"], 12, tmp_path, encoder, seed=3, beta_query=4.0, beta_gallery=b2, activation_k=k
    )
    sb = banks.spaces["text"]
    assert sb.query_source == source and len(sb.query_bank) == 12 and len(sb.gallery_bank) == 12
    pts = stored(store)
    for bank, src, beta, logs, act in (
        (sb.query_bank, sb.query_src, 4.0, sb.log_q, sb.act_q),
        (sb.gallery_bank, sb.gallery_src, b2, sb.log_g, sb.act_g),
    ):
        ref, active = naive_point_stats(pts, bank, list(src), beta, k)
        ids = [i.decode() for i in sb.ids]
        assert sorted(ids) == sorted(pts)
        np.testing.assert_allclose(logs, [ref[i] for i in ids], rtol=1e-6)
        assert {i for i, a in zip(ids, act, strict=True) if a} == active
    for method in ("dualis", "dualdis"):
        q = unit(np.abs(rng.normal(size=DIM)))
        ref_scores = naive_scores(banks, pts, q, method)
        ids = list(pts)
        got = banks.adjust("text", q, ids, np.array([float(q @ pts[i]) for i in ids]), method=method)
        np.testing.assert_allclose(got, [math.log(ref_scores[i]) for i in ids], rtol=1e-6, atol=1e-9)


def test_gallery_bank_holds_stored_vectors_and_sentences_come_from_texts(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    vecs = unit(rng.normal(size=(30, DIM)))
    texts = [f"Short. This is the long sentence number {i} of the corpus." for i in range(30)]
    seen: list[str] = []

    def encoder(space: str, batch: list[str]) -> np.ndarray:
        seen.extend(batch)
        return text_encoder(DIM)(space, batch)

    store = make_store(vecs, texts)
    sb = build_banks(store, ["text"], 10, tmp_path, encoder).spaces["text"]
    pts = stored(store)
    for v, src in zip(sb.gallery_bank, sb.gallery_src, strict=True):
        np.testing.assert_allclose(v, pts[src.decode()], atol=1e-6)
    # one sentence per sampled point, the long one (the short one is under MIN_CHARS)
    assert len(seen) == 10 and all(s.startswith("This is the long sentence") for s in seen)
    assert len(set(sb.gallery_src.tolist())) == 10


def planted_hubs(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Items, test queries (one per item), a query bank from the same query distribution, and a
    gallery with three hubs near the mean of the queries (the queries share an offset direction)."""
    rng = np.random.default_rng(seed)
    d, n = 32, 120
    items = unit(rng.normal(size=(n, d)))
    offset = unit(rng.normal(size=d))
    hubs = unit(offset + 0.3 * rng.normal(size=(3, d)) / np.sqrt(d))

    def queries(which: np.ndarray) -> np.ndarray:
        return unit(items[which] + 1.5 * rng.normal(size=(len(which), d)) / np.sqrt(d) + 0.8 * offset)

    return items, queries(np.arange(n)), queries(rng.integers(0, n, 200)), np.vstack([items, hubs])


def test_planted_hubs_lose_occurrences_and_recall_rises(tmp_path: Path) -> None:
    items, test_q, bank_q, gallery = planted_hubs()
    store = make_store(gallery)
    ids = [point_id("h", str(i)) for i in range(len(gallery))]
    texts = [f"q{i}" for i in range(len(bank_q))]
    lookup = dict(zip(texts, bank_q, strict=True))
    banks = build_banks(
        store,
        ["text"],
        200,
        tmp_path,
        lambda space, batch: np.stack([lookup[t] for t in batch]),
        queries=texts,
        beta_query=10.0,
        beta_gallery=10.0,
    )
    assert banks.spaces["text"].query_source == "queries"

    def run(b: HubnessBanks | None) -> tuple[float, float]:
        tops = [[p.id for p in corrected_search(store, b, "text", q, 10, None, len(gallery))] for q in test_q]
        r1 = float(np.mean([t[0] == ids[i] for i, t in enumerate(tops)]))
        return r1, k_occurrence_skewness(tops, len(gallery))

    r1_raw, skew_raw = run(None)
    for method in ("dualis", "dualdis"):
        banks.method = method
        r1, skew = run(banks)
        assert skew < skew_raw / 2, (method, skew, skew_raw)
        assert r1 > r1_raw + 0.05, (method, r1, r1_raw)


def test_zero_temperatures_leave_the_ranking_alone(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    store = make_store(unit(rng.normal(size=(30, DIM))))
    banks = build_banks(store, ["text"], 10, tmp_path, beta_query=0.0, beta_gallery=0.0)
    q = unit(rng.normal(size=DIM))
    plain = corrected_search(store, None, "text", q, 8, None, 30)
    for method in ("dualis", "dualdis"):
        got = corrected_search(store, banks, "text", q, 8, None, 30, method)
        assert [p.id for p in got] == [p.id for p in plain]


def test_save_load_roundtrip_and_bad_file(tmp_path: Path) -> None:
    assert HubnessBanks.load(tmp_path) is None
    rng = np.random.default_rng(4)
    store = make_store(unit(rng.normal(size=(25, DIM))))
    banks = build_banks(store, ["text"], 6, tmp_path, seed=9, beta_gallery=0.0, method="dualdis")
    assert (tmp_path / FILE).exists() and not (tmp_path / (FILE + ".tmp")).exists()
    back = HubnessBanks.load(tmp_path)
    assert back is not None
    assert back.meta() == banks.meta() and back.method == "dualdis" and back.beta_gallery == 0.0
    assert back.meta()["spaces"]["text"]["gallery_bank"] == 6 and back.store_points == 25
    for key in ("ids", "log_q", "log_g", "act_q", "act_g", "query_bank", "gallery_bank", "gallery_src"):
        np.testing.assert_array_equal(getattr(back.spaces["text"], key), getattr(banks.spaces["text"], key))
    (tmp_path / FILE).write_bytes(b"not a zip file")
    with pytest.raises(MMRAGError, match=FILE):
        HubnessBanks.load(tmp_path)


def test_unknown_ids_are_scored_as_a_typical_point(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    vecs = unit(rng.normal(size=(30, DIM)))
    store = make_store(vecs)
    banks = build_banks(store, ["text"], 8, tmp_path)
    sb = banks.spaces["text"]
    new = unit(rng.normal(size=(20, DIM)))
    store.upsert([PointData(f"00000000-0000-0000-0000-{i:012d}", {"text": v}) for i, v in enumerate(new)])
    assert banks.stale(store.count()) and not banks.stale(banks.store_points)
    q = unit(rng.normal(size=DIM))
    ids = [sb.ids[0].decode(), "00000000-0000-0000-0000-000000000003", "not-an-id-at-all"]
    sims = np.array([0.5, 0.4, 0.3])
    got = banks.adjust("text", q, ids, sims)
    b = banks.beta_query + banks.beta_gallery
    assert got[0] == pytest.approx(b * 0.5 - sb.log_q[0] - sb.log_g[0])
    assert got[1:] == pytest.approx(b * sims[1:] - float(np.median(sb.log_q)) - float(np.median(sb.log_g)))
    hits = corrected_search(store, banks, "text", q, 5, None, 50)
    assert len(hits) == 5 and all(np.isfinite(h.score) for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_adjust_checks_and_passes_unknown_spaces_through(tmp_path: Path) -> None:
    banks = build_banks(
        make_store(unit(np.random.default_rng(6).normal(size=(5, DIM)))), ["text"], 3, tmp_path
    )
    sims = np.array([0.9, 0.1])
    np.testing.assert_array_equal(banks.adjust("image", np.zeros(4), ["a", "b"], sims), sims)
    with pytest.raises(MMRAGError, match="dim"):
        banks.adjust("text", np.zeros(DIM + 1), ["a", "b"], sims)
    with pytest.raises(MMRAGError, match="ids"):
        banks.adjust("text", np.zeros(DIM), ["a"], sims)
    with pytest.raises(MMRAGError, match="method"):
        banks.adjust("text", np.zeros(DIM), ["a", "b"], sims, method="nope")  # type: ignore[arg-type]


def test_empty_and_tiny_stores(tmp_path: Path) -> None:
    empty = make_store(np.zeros((0, DIM)))
    banks = build_banks(empty, ["text"], 10, tmp_path / "e")
    assert banks.spaces == {} and not banks.has("text") and HubnessBanks.load(tmp_path / "e") is not None
    assert corrected_search(empty, banks, "text", np.ones(DIM), 3, None, 10) == []
    vecs = unit(np.random.default_rng(7).normal(size=(3, DIM)))
    sb = build_banks(make_store(vecs), ["text"], 10, tmp_path / "t").spaces["text"]
    assert len(sb.gallery_bank) == 3 and len(sb.ids) == 3  # smaller than a bank: every point is in it
    assert np.isfinite(sb.log_q).all() and np.isfinite(sb.log_g).all()
    one = build_banks(make_store(vecs[:1]), ["text"], 10, tmp_path / "o").spaces["text"]
    # its only bank entry is itself, left out: no statistic, so it stays neutral
    assert one.log_q.tolist() == [0.0] and one.log_g.tolist() == [0.0] and not one.act_g.any()


def test_bad_arguments(tmp_path: Path) -> None:
    store = make_store(
        unit(np.random.default_rng(8).normal(size=(5, DIM))), ["A sentence that is long enough."] * 5
    )
    with pytest.raises(MMRAGError, match="at least 1"):
        build_banks(store, ["text"], 0, tmp_path)
    with pytest.raises(MMRAGError, match="method"):
        build_banks(store, ["text"], 3, tmp_path, method="qb")  # type: ignore[arg-type]
    with pytest.raises(MMRAGError, match="shape"):
        build_banks(store, ["text"], 3, tmp_path, lambda s, t: np.zeros((len(t), DIM + 1)))
    with pytest.raises(MMRAGError, match="needs a query encoder"):
        build_banks(store, ["text"], 3, tmp_path, queries=["who?"])
    # an encoder without a text side for the space: the query bank is sampled stored vectors
    banks = build_banks(store, ["text"], 3, tmp_path, lambda s, t: None)
    assert banks.spaces["text"].query_source == "vectors"


def test_k_occurrence_skewness() -> None:
    assert k_occurrence_skewness([["a"], ["b"], ["c"]], 3) == 0.0
    hubby = k_occurrence_skewness([["a"]] * 9 + [["b"]], 10)
    spread = k_occurrence_skewness([["a"], ["b"], ["c"], ["d"], ["e"], ["f"]], 10)
    assert hubby > spread > -1.0
    counts = np.array([9, 1] + [0] * 8, dtype=float)
    ref = float(((counts - counts.mean()) ** 3).mean() / counts.std() ** 3)
    assert hubby == pytest.approx(ref)
