"""`Store.get(ids)`: points by id in one request, on both backends, and `mmrag serve` finding a hit with it.

The contract runs on the embedded shard and on qdrant-client's local mode (as in tests/test_store.py);
`test_get_on_a_server` runs it on a real Qdrant server when tests/test_store_server.py finds one
(`MMRAG_TEST_QDRANT_URL`, or the `qdrant` binary) and skips with the reason otherwise.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from test_store import make_points, open_backend
from test_store_server import _server_store, qdrant_server  # noqa: F401  (the server fixture)

from mmrag.store import Store, point_id
from mmrag.types import PointData


@pytest.fixture(params=["edge", "client"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    s = open_backend(str(request.param), tmp_path)
    s.upsert(make_points())
    yield s
    s.close()


def _no_scan(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make any scroll of `store` fail: `get` must read the points by id, not scan for them."""

    def scan(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("get scanned the store")

    monkeypatch.setattr(store, "scroll", scan)


def check_get_contract(store: Store) -> None:
    pts = make_points()
    missing = point_id("never", "indexed")
    asked = [pts[3].id, missing, pts[0].id, "not-a-point-id", pts[3].id, pts[5].id]
    rows = store.get(asked)
    assert [r["id"] for r in rows] == [pts[3].id, pts[0].id, pts[5].id]  # order asked, each once
    for row in rows:
        src = next(p for p in pts if p.id == row["id"])
        assert row["payload"] == src.payload
        assert "vectors" not in row
    assert store.get([]) == []
    assert store.get([missing, "not-a-point-id"]) == []
    # an id written in capitals names the same point
    assert [r["id"] for r in store.get([pts[1].id.upper()])] == [pts[1].id]


def check_get_vectors(store: Store) -> None:
    pts = make_points()
    (row,) = store.get([pts[2].id], with_vectors=True)
    for name, vec in pts[2].dense.items():
        np.testing.assert_allclose(row["vectors"][name], vec, atol=1e-5)
    assert pts[2].sparse is not None
    assert sorted(row["vectors"]["bm25"].indices) == sorted(pts[2].sparse.indices)
    # a point without a `text` vector has none to return
    (odd,) = store.get([pts[1].id], with_vectors=True)
    assert "text" not in odd["vectors"]


def test_get_returns_the_asked_points_in_order(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_scan(store, monkeypatch)
    check_get_contract(store)


def test_get_with_vectors(store: Store) -> None:
    check_get_vectors(store)


def test_get_sees_overwrites_and_deletes(store: Store) -> None:
    pts = make_points()
    first = pts[0]
    store.upsert([PointData(first.id, first.dense, first.sparse, payload={**first.payload, "v": 2})])
    assert store.get([first.id])[0]["payload"]["v"] == 2
    store.delete_ids([pts[4].id])
    assert store.get([pts[4].id]) == []
    assert [r["id"] for r in store.get([pts[4].id, pts[2].id])] == [pts[2].id]


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_get_on_a_server(qdrant_server: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    s = _server_store(qdrant_server)
    try:
        s.upsert(make_points())
        check_get_vectors(s)
        _no_scan(s, monkeypatch)
        check_get_contract(s)
    finally:
        s.client.delete_collection(s.collection)
        s.close()


def test_serve_finds_a_hit_by_id_without_scanning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`/api/hit/{id}` for a hit not served before reads that one point from the store."""
    from mmrag.serve.backend import Backend

    store = open_backend("edge", tmp_path)
    store.upsert(make_points())
    _no_scan(store, monkeypatch)
    files = SimpleNamespace(all=list, roots=list)
    pipe = SimpleNamespace(store=store, files=files, close=store.close, index_dir=tmp_path)
    backend = Backend(lambda: pipe)  # type: ignore[arg-type, return-value]
    backend.start(preload=False)
    try:
        pts = make_points()
        hit = backend.call(backend.find_hit, pts[2].id).result()
        assert hit is not None and hit.id == pts[2].id
        assert hit.path == pts[2].payload["path"] and hit.modality == pts[2].payload["modality"]
        assert backend.cached_hit(pts[2].id) == hit
        assert backend.call(backend.find_hit, point_id("never", "indexed")).result() is None
        assert backend.call(backend.find_hit, "../../etc/passwd").result() is None
    finally:
        backend.close()
