"""The parts of `mmrag index --ray` that need no Ray cluster: listing sources, stamps, write requests,
retries, the file table's stamp column, and the command line's messages.

Listings of buckets are checked on fsspec's in-memory filesystem (`memory://`), which the driver
lists in its own process; the Ray runs themselves are in tests/test_ray_index.py.
"""

from __future__ import annotations

import sqlite3
import sys
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.index.folder import FileTable
from mmrag.index.ray_job import plan
from mmrag.index.ray_write import request_batches, retryable, with_retries
from mmrag.index.sources import Source, fetch, local_stamp, remote_sources
from mmrag.types import IndexReport, MMRAGError, PointData, SparseVec, point_id

fsspec = pytest.importorskip("fsspec", reason="fsspec is not installed: pip install 'mmrag[ray]'")


def _point(i: int, dim: int = 512) -> PointData:
    vec = np.full(dim, 1 / np.sqrt(dim), dtype=np.float32)
    return PointData(
        point_id("h", f"c{i}"), {"image": vec}, SparseVec([1, 2], [0.5, 0.5]), {"path": "/a.jpg"}
    )


def test_requests_are_capped_by_points_and_by_bytes() -> None:
    items = [("a", _point(i)) for i in range(10)]  # 2 KB of vector each
    by_points = [len(b) for b in request_batches(items, max_points=4, max_bytes=1 << 20)]
    assert by_points == [4, 4, 2]
    by_bytes = list(request_batches(items, max_points=100, max_bytes=5000))
    assert [len(b) for b in by_bytes] == [2, 2, 2, 2, 2]
    heavy = [("page", _point(0, dim=128 * 1030)), *items[:2]]  # a ColPali-sized page: 527 KB alone
    assert [len(b) for b in request_batches(heavy, max_points=100, max_bytes=5000)] == [1, 2]


def _http_error(status: int) -> Exception:
    from qdrant_client.http.exceptions import UnexpectedResponse

    return UnexpectedResponse(status, "x", b"", None)  # type: ignore[arg-type]


def test_retryable_errors_are_told_from_the_rest() -> None:
    import httpx
    from qdrant_client.http.exceptions import ResponseHandlingException

    wrapped = MMRAGError("upsert into 'mmrag': the Qdrant server at http://q:6333 failed")
    wrapped.__cause__ = _http_error(503)
    timeout = ResponseHandlingException(httpx.ReadTimeout("read timed out"))
    for e in (_http_error(429), _http_error(502), wrapped, timeout, RuntimeError("Please retry later")):
        assert retryable(e), e
    for e in (
        _http_error(400),
        _http_error(404),
        ValueError("dim 3, expected 4"),
        MMRAGError("no such space"),
    ):
        assert not retryable(e), e


def test_a_write_is_retried_with_growing_backoff_then_gives_up() -> None:
    slept: list[float] = []
    calls: list[int] = []

    def flaky(fail: int, error: Exception) -> Any:
        def write() -> None:
            calls.append(1)
            if len(calls) <= fail:
                raise error

        return write

    assert with_retries(flaky(2, _http_error(429)), retries=5, base=0.1, sleep=slept.append) == 2
    assert len(calls) == 3 and len(slept) == 2 and slept[1] > slept[0] * 1.2 - 1e-9
    calls.clear()
    with pytest.raises(ValueError):
        with_retries(flaky(1, ValueError("bad point")), retries=5, sleep=slept.append)
    assert len(calls) == 1  # not retryable: raised at once
    calls.clear()
    with pytest.raises(type(_http_error(429))):
        with_retries(flaky(10, _http_error(429)), retries=3, base=0.0, sleep=slept.append)
    assert len(calls) == 4


@pytest.fixture()
def bucket() -> Any:
    """A folder in fsspec's memory filesystem, laid out like a local corpus; removed afterwards."""
    fs = fsspec.filesystem("memory")
    root = f"/bucket-{uuid.uuid4().hex[:8]}"
    files = {
        "a.jpg": b"jpeg a",
        "a.txt": b"a caption",  # read with a.jpg
        "b.mp4": b"video b",
        "b.srt": b"1\n00:00:00,000 --> 00:00:01,000\nhello\n",  # read with b.mp4
        "b.mp4.meta.json": b'{"title": "B"}',  # read with b.mp4
        "notes.txt": b"plain notes",  # no image of that stem: a document
        ".hidden/c.jpg": b"hidden",
        "sub/d.pdf": b"%PDF",
        "sub/e.xyz": b"unsupported",
    }
    for name, data in files.items():
        fs.pipe(f"{root}/{name}", data)
    yield fs, root, files
    fs.rm(root, recursive=True)


def test_a_bucket_is_listed_like_a_local_walk(bucket: Any) -> None:
    fs, root, _ = bucket
    sources, errors = remote_sources([f"memory://{root}", f"memory://{root}/nothing-here"])
    url = f"memory://{root}"
    assert [s.key for s in sources] == [f"{url}/{n}" for n in ("a.jpg", "b.mp4", "notes.txt", "sub/d.pdf")]
    by_key = {s.key: s for s in sources}
    assert by_key[f"{url}/a.jpg"].sidecars == (f"{url}/a.txt",)
    assert by_key[f"{url}/b.mp4"].sidecars == (f"{url}/b.srt", f"{url}/b.mp4.meta.json")
    assert by_key[f"{url}/a.jpg"].size == 6 and all(s.stamp for s in sources)
    assert [(e.path, e.reason) for e in errors] == [(f"{url}/nothing-here", "no such file or folder")]
    # editing a sidecar changes its file's stamp, and only that one
    fs.pipe(f"{root}/a.txt", b"another caption, longer")
    again = {s.key: s.stamp for s in remote_sources([url])[0]}
    assert again[f"{url}/a.jpg"] != by_key[f"{url}/a.jpg"].stamp
    assert again[f"{url}/notes.txt"] == by_key[f"{url}/notes.txt"].stamp


def test_a_fetched_object_hashes_like_the_same_files_on_disk(bucket: Any, tmp_path: Path) -> None:
    from mmrag.ingest import file_hash

    _, root, files = bucket
    source = next(s for s in remote_sources([f"memory://{root}"])[0] if s.key.endswith("b.mp4"))
    for name in ("b.mp4", "b.srt", "b.mp4.meta.json"):
        (tmp_path / name).write_bytes(files[name])
    with fetch(source) as (copy, copied):
        names = sorted(p.name for p in copy.parent.iterdir())
        assert copy.name == "b.mp4" and names == sorted(["b.mp4", "b.srt", "b.mp4.meta.json"])
        assert file_hash(copy) == file_hash(tmp_path / "b.mp4")  # the sidecars are in the hash
        assert copied == sum(len(files[n]) for n in names)
        scratch = copy.parent
    assert not scratch.exists()


def test_unchanged_stamps_are_skipped_before_reading(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"a")
    (tmp_path / "b.jpg").write_bytes(b"b")
    table = FileTable(tmp_path / "files.sqlite")
    a, b = (Source(str(tmp_path / n), 1, local_stamp(tmp_path / n)) for n in ("a.jpg", "b.jpg"))
    table.put_many([(a.key, "ha", 1, 3, 0, 0, 0, a.stamp), (b.key, "hb", 1, 2, 0, 0, 0, None)])
    report = IndexReport()
    todo, known = plan([b, a], table, report)
    assert [(s.key, h) for s, h in todo] == [(b.key, "hb")]  # no stamp recorded: hashed again
    assert report.files_skipped == 1 and known == {a.key: 3, b.key: 2}
    (tmp_path / "a.txt").write_text("a caption appears beside it")  # a new sidecar: a new stamp
    assert local_stamp(tmp_path / "a.jpg") != a.stamp
    table.close()


def test_a_file_table_from_before_stamps_gets_the_column(tmp_path: Path) -> None:
    db = tmp_path / "files.sqlite"
    con = sqlite3.connect(db)
    con.execute(
        "CREATE TABLE files (path TEXT PRIMARY KEY, hash TEXT NOT NULL, size INTEGER NOT NULL, "
        "points INTEGER NOT NULL, indexed_at REAL NOT NULL, mtime_ns INTEGER, dev INTEGER, ino INTEGER)"
    )
    con.execute("INSERT INTO files VALUES ('/old.jpg', 'h0', 1, 1, 0.0, 5, 6, 7)")
    con.commit()
    con.close()
    table = FileTable(db)
    table.put_many([("s3://b/new.jpg", "h1", 2, 4, None, None, None, "stamp1")])
    old, new = table.get("/old.jpg"), table.get("s3://b/new.jpg")
    assert old is not None and old.stamp is None and old.ino == 7
    assert new is not None and (new.stamp, new.points, new.ino) == ("stamp1", 4, None)
    table.close()


def test_without_ray_the_command_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails, as where it is not installed
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("some words to index")
    args = ["index", str(tmp_path / "c"), "-i", str(tmp_path / "idx"), "-p", "offline", "--ray", "local"]
    r = CliRunner().invoke(app, [*args, "--no-progress"], env={"COLUMNS": "200"})
    assert r.exit_code == 2
    assert r.stderr.strip().splitlines() == ["error: --ray needs Ray Data: pip install 'mmrag[ray]'"]
    assert "Traceback" not in r.output


def test_scale_out_options_need_ray(tmp_path: Path) -> None:
    args = ["index", str(tmp_path), "-i", str(tmp_path / "idx"), "--encoders", "2", "--no-progress"]
    r = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert r.exit_code == 2 and "go with --ray" in r.stderr


def test_bulk_is_for_a_server_collection() -> None:
    from mmrag.config import MMRAGConfig
    from mmrag.index.ray_write import begin_bulk, on_server
    from mmrag.store.base import StoreSchema
    from mmrag.store.server_setup import ServerOptions

    assert on_server("http://qdrant:6333") and not on_server(None) and not on_server(":memory:")
    assert not on_server("local:/tmp/q")
    for url in (None, ":memory:"):
        cfg = MMRAGConfig.load(env={}, **{"store.url": url, "ray.bulk": True})
        with pytest.raises(MMRAGError, match="--bulk loads a new collection on a Qdrant server"):
            begin_bulk(cfg, StoreSchema({"image": 4}), ServerOptions())
