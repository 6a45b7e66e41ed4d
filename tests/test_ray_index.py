"""`mmrag index --ray` on a local Ray cluster against the one-machine path: same points, failures, resume.

One Ray cluster serves the whole test session (`ray_cluster`: 2 CPUs and one GPU that Ray only
counts, so the `--gpus-per-encoder` path is scheduled without a GPU). Stages take small CPU
fractions, so no stage starves the others on 2 cores. The models are the offline profile's
EfficientNet-Lite0 with BM25 for text (no text embedder), as in tests/test_index_overlap.py, and the
reference is one serial index of the same corpus, built once (`reference`).

The Qdrant server run skips without `MMRAG_TEST_QDRANT_URL`, like tests/test_store_server.py.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from media import make_pdf, make_video  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.cli import app  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402

ray = pytest.importorskip("ray", reason="Ray Data is not installed: pip install 'mmrag[ray]'")

from mmrag.index import ray_job  # noqa: E402
from mmrag.index.ray_job import ray_index  # noqa: E402

OPTS = {"encoders.ocr": False, "encoders.text": "none", "ingest.clip_seconds": 2.0}
TOML = 'profile = "offline"\n[encoders]\nocr = false\ntext = "none"\n[ingest]\nclip_seconds = 2.0\n'
N_PHOTOS = 8


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[str]:
    """A local Ray cluster for the session; its address, for a second driver to join."""
    import logging

    ray.init(address="local", num_cpus=2, num_gpus=1, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _photo(i: int) -> Image.Image:
    rng = np.random.default_rng(i)
    return Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize((80, 60))


def make_corpus(root: Path, photos: int = N_PHOTOS) -> Path:
    """Photos (one with a caption), a PDF, a video with subtitles, a text file and a broken PNG."""
    root.mkdir(parents=True)
    for i in range(photos):
        _photo(i).save(root / f"img{i:02d}.jpg")
    (root / "img00.txt").write_text("A harbour at dawn")  # caption sidecar
    (root / "notes.txt").write_text("Ferries cross the harbour every hour. " * 60)
    make_pdf(root / "report.pdf", ["Annual report of the ferry company.", "Dividends rose to two dollars."])
    make_video(root / "clip.mp4", seconds=4, fps=5)
    (root / "clip.srt").write_text("1\n00:00:00,000 --> 00:00:02,000\nThe ferry leaves\n")
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return root


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], dict[str, Any]]:
    """The corpus, and the points and file table of its serial index (no Ray)."""
    root = make_corpus(tmp_path_factory.mktemp("ray") / "corpus")
    with Pipeline.from_config(profile="offline", index=root.parent / "serial", **OPTS) as p:
        report = p.index([root])
        assert [Path(e.path).name for e in report.errors] == ["broken.png"]
        return root, _points(p), _files(p)


def _points(p: Pipeline) -> dict[str, Any]:
    return {x["id"]: x for x in p.store.scroll(with_vectors=True)}


def _files(p: Pipeline) -> dict[str, Any]:
    return {r.path: (r.hash, r.points) for r in p.files.all()}


def assert_same_points(got: dict[str, Any], want: dict[str, Any], path_of: Any = str) -> None:
    """Same ids, payloads (paths mapped by `path_of`) and vectors (cosine > 0.9999, BM25 terms equal)."""
    assert got.keys() == want.keys()
    for pid, point in want.items():
        payload = {**point["payload"], "path": path_of(point["payload"]["path"])}
        assert got[pid]["payload"] == payload, pid
        for space, vec in point["vectors"].items():
            other = got[pid]["vectors"][space]
            if space == "bm25":
                assert other.indices == vec.indices and np.allclose(other.values, vec.values)
            else:
                assert float(np.asarray(other) @ np.asarray(vec)) > 0.9999, (pid, space)


def _ray_run(index: Path, paths: list[Any], **extra: Any) -> tuple[Any, Any, dict[str, Any], dict[str, Any]]:
    """`ray_index` as the CLI runs it, on the session cluster: report, stage stats, points, files."""
    opts = {**OPTS, "ray.address": "local", "ray.encoder_cpus": 0.25, **extra}
    with Pipeline.from_config(profile="offline", index=index, **opts) as p:
        report, stats = ray_index(p.updates, paths)
        p.finish_index(changed=bool(report.points_written))
        return report, stats, _points(p), _files(p)


@pytest.mark.slow
def test_mixed_corpus_gives_the_serial_points(ray_cluster: str, reference: Any, tmp_path: Path) -> None:
    root, want, want_files = reference
    cfg = tmp_path / "offline.toml"
    cfg.write_text(TOML)
    idx = tmp_path / "idx"
    # two encoder actors sharing the GPU that the cluster counts: the GPU path, scheduled on CPU
    args = ["index", str(root), "-i", str(idx), "-c", str(cfg), "--ray", "local", "--encoders", "2"]
    r = CliRunner().invoke(app, [*args, "--gpus-per-encoder", "0.5", "--json", "--no-progress"])
    assert r.exit_code == 1, r.output  # the broken PNG
    import json

    out = json.loads(r.stdout)
    assert [Path(e["path"]).name for e in out["errors"]] == ["broken.png"]
    assert out["files_indexed"] == len(want_files) and out["points_total"] == len(want)
    assert out["stages"]["chunks_encoded"] == len(want) and out["stages"]["files_read"] == len(want_files)
    with Pipeline.load(idx) as p:
        assert_same_points(_points(p), want)
        assert _files(p) == want_files
        assert p.search("ferry dividends", k=1)[0].path.endswith("report.pdf")
    # a rerun reads nothing: every file's listing stamp matches its record
    r = CliRunner().invoke(app, [*args, "--json", "--no-progress"])
    again = json.loads(r.stdout)
    assert again["files_skipped"] == len(want_files) and again["files_indexed"] == 0
    assert again["stages"]["files_read"] == 0 and again["stages"]["ray_start_seconds"] == 0


def _encoder_pids() -> list[int]:
    """Encoder actor processes of this session's cluster (below this process), the newest last."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "create_time"]):
        if "MapBatches(ChunkEncoder)" not in " ".join(proc.info["cmdline"] or []):
            continue
        with contextlib.suppress(psutil.Error):
            if any(parent.pid == os.getpid() for parent in proc.parents()):
                found.append((proc.info["create_time"], proc.info["pid"]))
    return [pid for _, pid in sorted(found)]


@pytest.mark.slow
def test_an_encoder_killed_mid_run_leaves_the_same_index(
    ray_cluster: str, reference: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, want, want_files = reference
    killed: list[int] = []
    real = ray_job.Driver.points

    def kill_once(self: Any, f: Any, enc: Any) -> None:
        real(self, f, enc)
        if not killed:  # the first points are in: more batches are still to come (2 chunks a batch)
            victim = _encoder_pids()[-1]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    monkeypatch.setattr(ray_job.Driver, "points", kill_once)
    report, _, got, files = _ray_run(tmp_path / "idx", [root], **{"encoders.batch_size": 2})
    assert killed and killed[0] not in _encoder_pids()
    assert [Path(e.path).name for e in report.errors] == ["broken.png"]
    assert_same_points(got, want)
    assert files == want_files


@pytest.mark.slow
def test_driver_killed_mid_run_resumes_without_redoing_recorded_files(
    ray_cluster: str, tmp_path: Path
) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    for i in range(40):
        _photo(100 + i).save(root / f"p{i:02d}.jpg")
    cfg = tmp_path / "offline.toml"
    cfg.write_text(TOML + "commit_seconds = 0.0\n")  # (in [ingest]) record each file once written
    idx = tmp_path / "idx"
    args = ["index", str(root), "-i", str(idx), "-c", str(cfg), "--no-progress", "--json"]
    driver = "import sys; from mmrag.cli import main; sys.argv[0] = 'mmrag'; main()"
    proc = subprocess.Popen(
        [sys.executable, "-c", driver, *args, "--ray", ray_cluster],
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    recorded = _wait_for_records(idx / "files.sqlite", proc, at_least=3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    before = _records(idx / "files.sqlite")
    assert 3 <= len(before) < 40 and set(recorded) <= set(before)

    import json

    r = CliRunner().invoke(app, [*args, "--ray", "local"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["files_skipped"] == len(before) and out["files_indexed"] == 40 - len(before)
    assert out["stages"]["files_read"] == 40 - len(before)  # recorded files were not even read
    after = _records(idx / "files.sqlite")
    assert {k: after[k] for k in before} == before  # their records untouched
    with Pipeline.from_config(profile="offline", index=tmp_path / "serial", **OPTS) as p:
        p.index([root])
        want = _points(p)
    with Pipeline.load(idx) as p:
        assert p.store.count() == len(want) == 40  # no duplicates
        assert_same_points(_points(p), want)


def _records(db: Path) -> dict[str, tuple[str, float]]:
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return {p: (h, t) for p, h, t in con.execute("SELECT path, hash, indexed_at FROM files")}
    except sqlite3.OperationalError:  # the table is not made yet
        return {}
    finally:
        con.close()


def _wait_for_records(db: Path, proc: subprocess.Popen[bytes], at_least: int) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = _records(db)
        if len(rows) >= at_least:
            return rows
        if proc.poll() is not None:
            pytest.fail(f"the driver ended before it was killed: {proc.stderr.read()[-3000:]!r}")  # type: ignore[union-attr]
        time.sleep(0.05)
    proc.kill()
    pytest.fail("the driver recorded no file within 120 s")


@pytest.mark.slow
def test_file_url_source_byte_capped_writes_and_one_injected_error(
    ray_cluster: str, reference: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qdrant_client.http.exceptions import UnexpectedResponse

    from mmrag.index.ray_write import point_bytes
    from mmrag.store.edge import EdgeStore

    root, want, _ = reference
    cap = 12_000  # two 1280-d image vectors (5 KB each, with payload); text points are lighter
    sizes: list[tuple[int, int]] = []
    refused: list[int] = []
    real = EdgeStore.upsert

    def upsert(self: EdgeStore, points: Any) -> None:
        if not refused:  # the server's answer under load, once
            refused.append(len(points))
            raise UnexpectedResponse(429, "Too Many Requests", b"Please retry", None)  # type: ignore[arg-type]
        sizes.append((len(points), sum(point_bytes(p) for p in points)))
        real(self, points)

    monkeypatch.setattr(EdgeStore, "upsert", upsert)
    monkeypatch.setattr("mmrag.index.ray_write.random.random", lambda: 0.0)  # shortest backoff
    url = root.as_uri()  # file:///.../corpus, read through fsspec like a bucket
    extra = {"ray.write_bytes": cap, "ray.write_points": 3}
    report, stats, got, files = _ray_run(tmp_path / "idx", [url], **extra)
    assert [e.path for e in report.errors] == [f"{url}/broken.png"]
    assert_same_points(got, want, path_of=lambda p: Path(p).as_uri())
    assert set(files) == {Path(p).as_uri() for p in {pt["payload"]["path"] for pt in want.values()}}
    assert stats.write_retries == 1 and refused
    assert sum(n for n, _ in sizes) == len(want)
    assert all(n <= 3 and (b <= cap or n == 1) for n, b in sizes) and max(b for _, b in sizes) > cap / 2
    # a rerun lists the objects and reads none of them: their listing stamps were recorded
    report, stats, _, _ = _ray_run(tmp_path / "idx", [url], **extra)
    assert report.files_skipped == len(files) and report.files_indexed == 0 and stats.files_read == 0


def test_writer_actors_write_every_request_and_acknowledge_each_point(
    ray_cluster: str, tmp_path: Path
) -> None:
    """`ShardWriter` actors behind `ActorWrites`, on qdrant-client's local mode (one actor: it locks
    its folder); a Qdrant server run is the test below."""
    from mmrag.config import MMRAGConfig
    from mmrag.index.ray_write import request_batches, start_writers
    from mmrag.store.base import StoreSchema
    from mmrag.store.server import ClientStore
    from mmrag.types import PointData, SparseVec, point_id

    url = f"local:{tmp_path / 'qdrant'}"
    schema = StoreSchema({"image": 8})
    cfg = MMRAGConfig.load(env={}, **{"store.url": url, "ray.writers": 1})
    with ClientStore(url, schema) as driver_side:  # the driver makes the collection, then lets go
        assert driver_side.count() == 0
    store = type("Store", (), {"schema": schema, "options": None})()  # what the driver opened
    writes = start_writers(ray, store, cfg)
    vec = np.full(8, 8**-0.5, dtype=np.float32)
    items = [
        (f"f{i % 3}", PointData(point_id("h", str(i)), {"image": vec}, SparseVec([1], [1.0]), {}))
        for i in range(10)
    ]
    acks = []
    for batch in request_batches(items, max_points=3, max_bytes=1 << 20):
        acks += writes.send(batch)
    while writes.busy():
        acks += writes.poll(block=True)
    writes.close()
    assert sorted(acks) == sorted((k, p.id) for k, p in items) and writes.requests == 4
    for _ in range(100):  # the killed actor's lock on the folder goes with its process
        try:
            with ClientStore(url, schema) as after:
                assert after.count() == 10
            break
        except MMRAGError:
            time.sleep(0.1)
    else:
        pytest.fail("the writer actor's store stayed locked")


def test_server_collection_with_writer_actors_and_bulk(
    ray_cluster: str, reference: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = os.environ.get("MMRAG_TEST_QDRANT_URL")
    if not url:
        pytest.skip(
            "no Qdrant server: set MMRAG_TEST_QDRANT_URL to a running one (tests/test_store_server.py)"
        )
    root, want, want_files = reference
    monkeypatch.setenv("MMRAG_QDRANT_API_KEY", os.environ.get("MMRAG_TEST_QDRANT_API_KEY", ""))
    name = f"mmrag-ray-{uuid.uuid4().hex[:12]}"
    extra = {"store.url": url, "store.collection": name, "store.shard_number": 2, "ray.bulk": True}
    try:
        report, stats, got, _ = _ray_run(tmp_path / "idx", [root], **extra)
        assert stats.write_requests >= 2 and report.files_indexed == len(want_files)
        assert_same_points(got, want)
        with Pipeline.load(tmp_path / "idx") as p:
            info = p.store.client.get_collection(name)  # type: ignore[attr-defined]
            assert info.config.hnsw_config.m == 16 and info.config.params.shard_number == 2
    finally:
        from qdrant_client import QdrantClient

        QdrantClient(url=url, api_key=os.environ.get("MMRAG_TEST_QDRANT_API_KEY")).delete_collection(name)
