"""Export and import: an index moves between the embedded store, a Qdrant collection (qdrant-client local
mode stands in for the server) and a portable bundle, and the copy answers queries like the original."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from mmrag.cli.transfer import export_index, import_index
from mmrag.encoders.bm25 import Bm25Encoder
from mmrag.index.folder import SCHEMA_VERSION, FileTable, read_manifest, write_json_atomic
from mmrag.index.transfer import CHECKPOINT, copy_index, export_bundle, import_bundle
from mmrag.store import PointData, Prefetch, SearchFilter, Store, StoreSchema, point_id
from mmrag.store.edge import EdgeStore
from mmrag.store.server import ClientStore
from mmrag.types import MMRAGError

SCHEMA = StoreSchema(dense={"image": 8, "text": 4})
WORDS = "fox cat revenue quarter rocket orbit bread volcano penguin river forest harbor".split()
N = 530  # with batch_size=100: six pages, the last one short
SMALL = 120  # with batch_size=50: three pages


def _manifest(url: str | None = None) -> dict:
    """What `Pipeline.save` writes, trimmed to what a copy reads."""
    return {
        "schema_version": SCHEMA_VERSION,
        "profile": "offline",
        "encoders": {"image": {"id": "img", "dim": 8}, "text": {"id": "txt", "dim": 4}},
        "store": {"backend": "edge", "collection": "mmrag", "dense": dict(SCHEMA.dense), "sparse": ["bm25"]},
        "config": {"store": {"url": url, "collection": "mmrag", "hnsw_m": 16, "on_disk": False}},
    }


def _points(n: int = N) -> list[PointData]:
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(WORDS, size=6)) for _ in range(n)]
    sparse = Bm25Encoder().embed_documents(texts)
    out = []
    for i in range(n):
        dense = {name: rng.normal(size=dim).astype(np.float32) for name, dim in SCHEMA.dense.items()}
        dense = {k: v / np.linalg.norm(v) for k, v in dense.items() if not (k == "text" and i % 3 == 0)}
        payload = {
            "path": f"/data/f{i % 50}.txt",
            "modality": "text",
            "text": texts[i],
            "n": i,
            "tags": ["a"],
        }
        out.append(PointData(point_id(f"h{i % 50}", str(i)), dense, sparse[i], payload))
    return out


def _make_index(idx: Path, n: int) -> Path:
    """An embedded index folder: manifest, file table and `n` points."""
    with EdgeStore(idx / "store", SCHEMA) as s:
        s.upsert(_points(n))
    files = FileTable(idx / "files.sqlite")
    files.put_many([(f"/data/f{j}.txt", f"h{j}", 100 + j, 11) for j in range(50)])
    files.close()
    write_json_atomic(idx / "manifest.json", _manifest())
    return idx


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return _make_index(tmp_path / "src", N)


@pytest.fixture
def small(tmp_path: Path) -> Path:
    """Fewer points for copies into qdrant-client's local mode, which writes ~30 ms per point."""
    return _make_index(tmp_path / "small", SMALL)


def _queries() -> list[list[Prefetch]]:
    """Dense, BM25 and fused queries. BM25 scores tie (same counts, same length), and a tie in a
    candidate list changes the fused scores with the order it happens to be broken in, so the fused
    queries are dense only."""
    rng = np.random.default_rng(7)
    out = []
    for _ in range(4):
        img, txt = rng.normal(size=8).astype(np.float32), rng.normal(size=4).astype(np.float32)
        words = Bm25Encoder().embed_query(" ".join(rng.choice(WORDS, size=2)))
        out += [
            [Prefetch("image", dense=img)],
            [Prefetch("bm25", sparse=words)],
            [Prefetch("image", dense=img, limit=20), Prefetch("text", dense=txt, limit=20)],
        ]
    return out


def _answers(store: Store) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in store.query(q, limit=10)] for q in _queries()]


def _assert_same_answers(a: Store, b: Store) -> None:
    """Same hits with the same scores; hits tied in score may come in either order."""
    for got, want in zip(_answers(b), _answers(a), strict=True):
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=1e-4)
        g, w = dict(got), dict(want)
        for pid in g.keys() & w.keys():
            assert g[pid] == pytest.approx(w[pid], rel=1e-4)
        # Past the last score, ties are cut anywhere: every hit scoring above it must be in both.
        cut = want[-1][1] * (1 + 1e-4) if want else 0.0
        assert {i for i, s in got if s > cut} == {i for i, s in want if s > cut}


def _open(index: Path) -> Store:
    """The store of a finished copy, as its manifest describes it."""
    manifest = read_manifest(index)
    assert manifest is not None
    url = manifest["config"]["store"]["url"]
    if url is None:
        return EdgeStore(index / "store", SCHEMA)
    return ClientStore(url, SCHEMA, manifest["config"]["store"]["collection"], create=False)


def test_bundle_round_trip_answers_like_the_original(src: Path, tmp_path: Path) -> None:
    report = export_bundle(src, tmp_path / "b", batch_size=100)
    assert (report.copied, report.points, report.resumed_at) == (N, N, 0)
    assert report.verified == 64
    meta = json.loads((tmp_path / "b" / "bundle.json").read_text())
    assert [p["points"] for p in meta["parts"]] == [100] * 5 + [30]
    assert not (tmp_path / "b" / CHECKPOINT).exists()

    back = import_bundle(tmp_path / "b", tmp_path / "dst")
    assert back.points == N
    manifest = read_manifest(tmp_path / "dst")
    assert manifest is not None and manifest["store"]["backend"] == "edge"
    assert manifest["encoders"] == _manifest()["encoders"]
    src_files, dst_files = FileTable(src / "files.sqlite"), FileTable(tmp_path / "dst" / "files.sqlite")
    key = lambda r: (r.path, r.hash, r.size, r.points)  # noqa: E731
    assert sorted(map(key, dst_files.all())) == sorted(map(key, src_files.all()))
    src_files.close(), dst_files.close()
    with EdgeStore(src / "store", SCHEMA) as a, _open(tmp_path / "dst") as b:
        _assert_same_answers(a, b)
        assert b.count(SearchFilter(paths=["/data/f3.txt"])) == a.count(SearchFilter(paths=["/data/f3.txt"]))


def test_embedded_to_server_and_back(small: Path, tmp_path: Path) -> None:
    url = f"local:{tmp_path / 'qdrant'}"
    up = copy_index(small, tmp_path / "srv", url=url, collection="moved", batch_size=50)
    assert up.points == SMALL and up.verified == 64
    manifest = read_manifest(tmp_path / "srv")
    assert manifest is not None
    assert manifest["store"]["backend"] == "qdrant-server"
    assert (manifest["config"]["store"]["url"], manifest["config"]["store"]["collection"]) == (url, "moved")
    assert not (tmp_path / "srv" / "store").exists()  # the points are on the server only
    with EdgeStore(small / "store", SCHEMA) as a, _open(tmp_path / "srv") as b:
        _assert_same_answers(a, b)
    down = copy_index(tmp_path / "srv", tmp_path / "local", batch_size=50)
    assert down.points == SMALL
    with EdgeStore(small / "store", SCHEMA) as a, _open(tmp_path / "local") as b:
        _assert_same_answers(a, b)


class _Stop(Exception):
    pass


def _stop_after(n: int):
    def on_page(done: int) -> None:
        if done >= n:
            raise _Stop

    return on_page


@pytest.mark.parametrize("kind", ["bundle", "embedded", "server"])
def test_interrupted_copy_resumes_where_it_stopped(tmp_path: Path, kind: str) -> None:
    n, batch = (SMALL, 50) if kind == "server" else (N, 100)
    src, dest = _make_index(tmp_path / "src", n), tmp_path / "dest"
    url = f"local:{tmp_path / 'q'}" if kind == "server" else None

    def run(**kw):
        if kind == "bundle":
            return export_bundle(src, dest, batch_size=batch, **kw)
        return copy_index(src, dest, url=url, batch_size=batch, **kw)

    with pytest.raises(_Stop):
        run(on_page=_stop_after(2 * batch))
    assert json.loads((dest / CHECKPOINT).read_text())["copied"] == 2 * batch
    assert not (dest / "manifest.json").exists()  # an unfinished copy is never taken for an index
    report = run()
    assert (report.resumed_at, report.copied, report.points) == (2 * batch, n - 2 * batch, n)
    assert not (dest / CHECKPOINT).exists()
    with pytest.raises(MMRAGError, match="already holds a complete"):
        run()


def test_refuses_occupied_destinations(src: Path, tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(MMRAGError, match="not empty"):
        copy_index(src, tmp_path / "full")
    with pytest.raises(MMRAGError, match="same folder"):
        copy_index(src, src)
    url = f"local:{tmp_path / 'q'}"
    with ClientStore(url, SCHEMA, "taken") as s:
        s.upsert(_points(3))
    for _ in range(2):  # a second try must not skip the check
        with pytest.raises(MMRAGError, match=r"'taken' .* already holds 3 points"):
            copy_index(src, tmp_path / "x", url=url, collection="taken")
    with pytest.raises(MMRAGError, match="interrupted copy"):
        export_bundle(src, tmp_path / "x")
    with pytest.raises(MMRAGError, match="no index here"):
        export_bundle(tmp_path / "nothing", tmp_path / "y")


def test_damaged_bundles_are_named(src: Path, tmp_path: Path) -> None:
    export_bundle(src, tmp_path / "b", batch_size=200)
    part = tmp_path / "b" / "points-00001.npz"
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))
    with pytest.raises(MMRAGError, match=r"points-00001\.npz: checksum mismatch"):
        import_bundle(tmp_path / "b", tmp_path / "d1")

    meta_path = tmp_path / "b" / "bundle.json"
    meta = json.loads(meta_path.read_text())
    meta["parts"][0]["file"] = "../../etc/passwd"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(MMRAGError, match="bad part file name"):
        import_bundle(tmp_path / "b", tmp_path / "d2")
    meta_path.write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(MMRAGError, match="version 99 is not supported"):
        import_bundle(tmp_path / "b", tmp_path / "d3")
    with pytest.raises(MMRAGError, match="not an mmrag bundle"):
        import_bundle(tmp_path, tmp_path / "d4")


def _cli() -> typer.Typer:
    app = typer.Typer()
    app.command("export")(export_index)
    app.command("import")(import_index)
    return app


def test_cli_export_and_import(small: Path, tmp_path: Path) -> None:
    runner, app = CliRunner(), _cli()
    env = {"MMRAG_QDRANT_URL": "", "MMRAG_QDRANT_API_KEY": ""}
    res = runner.invoke(
        app, ["export", "--index", str(small), "--to", str(tmp_path / "b"), "--json"], env=env
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["points"] == SMALL
    url = f"local:{tmp_path / 'q'}"
    args = ["import", "--from", str(tmp_path / "b"), "--index", str(tmp_path / "srv"), "--qdrant-url", url]
    res = runner.invoke(app, [*args, "--json"], env=env)
    assert res.exit_code == 0, res.output
    assert read_manifest(tmp_path / "srv")["config"]["store"]["url"] == url  # type: ignore[index]
    res = runner.invoke(
        app, ["import", "--from", str(tmp_path / "srv"), "--index", str(tmp_path / "e")], env=env
    )
    assert res.exit_code == 0, res.output
    with EdgeStore(small / "store", SCHEMA) as a, _open(tmp_path / "e") as b:
        _assert_same_answers(a, b)

    res = runner.invoke(app, ["export", "--index", str(small), "--to", "http://127.0.0.1:1"], env=env)
    assert res.exit_code == 2 and "--out is needed" in res.output
    res = runner.invoke(
        app, ["export", "--index", str(small), "--to", str(tmp_path / "c"), "--shards", "3"], env=env
    )
    assert res.exit_code == 2 and "server URL only" in res.output
    res = runner.invoke(app, ["import", "--from", str(tmp_path), "--index", str(tmp_path / "z")], env=env)
    assert res.exit_code == 2 and "neither a" in res.output


@pytest.mark.slow  # indexing with the packaged models: ~30 s of the ~60 s on 2 shared cores
def test_pipeline_loads_the_copies_and_finds_the_same(tmp_path: Path) -> None:
    """A real index (offline profile), moved to a bundle, back to the embedded store and onto a
    server: `Pipeline.load` opens each copy, and each answers queries with the original's hits."""
    from PIL import Image, ImageDraw

    from mmrag import Pipeline

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    docs = {
        "cats.txt": "Cats are small domesticated carnivores. A cat sleeps most of the day and purrs.",
        "finance.txt": "Quarterly revenue rose 12 percent to 4.2 billion dollars; the dividend rose.",
        "space.md": "# Rockets\nThe rocket launched from the pad and reached orbit after nine minutes.",
    }
    for name, text in docs.items():
        (corpus / name).write_text(text)
    img = Image.new("RGB", (96, 64), "white")
    ImageDraw.Draw(img).ellipse((10, 10, 50, 50), fill="red")
    img.save(corpus / "red.png")
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **{"encoders.ocr": False}) as p:
        p.index([corpus])
        embedders = p.embedders  # loaded once: every copy records the same encoders

    queries = ["how much did revenue grow", "a sleeping cat", "rocket orbit", "red circle"]

    def answers(index: Path) -> list[list[tuple[str, str]]]:
        with Pipeline.load(index) as p:
            assert p.config.encoders == embedders.cfg
            p.embedders = embedders
            text = [[(h.id, h.path) for h in p.search(q, k=4)] for q in queries]
            return [*text, [(h.id, h.path) for h in p.search(image=corpus / "red.png", k=2)]]

    want = answers(tmp_path / "idx")
    assert Path(want[0][0][1]).name == "finance.txt"
    export_bundle(tmp_path / "idx", tmp_path / "bundle")
    import_bundle(tmp_path / "bundle", tmp_path / "edge")
    copy_index(tmp_path / "idx", tmp_path / "srv", url=f"local:{tmp_path / 'qdrant'}")
    for copy in ("edge", "srv"):
        assert answers(tmp_path / copy) == want, copy
