"""`ClientStore` against a Qdrant server: collection layout (shards, replicas, int8, on-disk), clear errors
for an unreachable server, a silent one and a rejected API key, and the `Store` contract of
`tests/test_store.py` run on a real server.

No package registry reachable here (PyPI, Debian, npm) ships the Qdrant server binary, so the real
server tests run only where one is available, and skip with the reason otherwise:

- `MMRAG_TEST_QDRANT_URL=http://host:6333` (+ `MMRAG_TEST_QDRANT_API_KEY`): an already running
  server (a CI service container); collections are created with unique names and dropped after;
- `MMRAG_QDRANT_BIN=/path/to/qdrant`, or `qdrant` on PATH (the release binary): started here on
  free loopback ports in a temporary folder, with an API key, and stopped after the session.

The layout and error tests talk to a loopback HTTP stub that records what the client sends.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

# The contract tests of tests/test_store.py, collected again here where `store` is server-backed.
from test_store import (  # noqa: F401
    SCHEMA,
    make_points,
    test_bad_input_is_named,
    test_delete_by_path,
    test_delete_ids,
    test_dense_query_ranks_nearest_first,
    test_filters,
    test_hybrid_fusion,
    test_missing_named_vectors,
    test_scroll_with_vectors,
    test_sparse_bm25_query,
    test_upsert_overwrites_same_id,
)

from mmrag.store import PointData, Prefetch, StoreSchema, point_id
from mmrag.store.server import ClientStore, ServerOptions, collection_config
from mmrag.types import MMRAGError

KEY = "mmrag-test-key"


# -- the layout of a new collection ------------------------------------------------------------------
def test_collection_config_is_a_valid_create_request() -> None:
    from qdrant_client import models

    opts = ServerOptions(
        shard_number=6,
        replication_factor=2,
        write_consistency_factor=2,
        on_disk_payload=True,
        quantization="int8",
    )
    kw = collection_config(StoreSchema({"image": 512, "text": 384}, on_disk=True), opts)
    body = models.CreateCollection(
        vectors=kw["vectors_config"],
        sparse_vectors=kw["sparse_vectors_config"],
        hnsw_config=kw["hnsw_config"],
        shard_number=kw["shard_number"],
        replication_factor=kw["replication_factor"],
        write_consistency_factor=kw["write_consistency_factor"],
        on_disk_payload=kw["on_disk_payload"],
        quantization_config=kw["quantization_config"],
    ).model_dump(mode="json", exclude_none=True)
    assert body["vectors"]["image"] == {"size": 512, "distance": "Cosine", "on_disk": True}
    assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"]) == (6, 2, 2)
    assert body["on_disk_payload"] is True
    assert body["quantization_config"]["scalar"]["type"] == "int8"
    assert body["sparse_vectors"]["bm25"]["modifier"] == "idf"
    # Defaults leave every layout choice to the server.
    plain = collection_config(StoreSchema({"image": 8}), ServerOptions())
    assert plain["shard_number"] is plain["quantization_config"] is plain["on_disk_payload"] is None


def test_server_options_check_their_values() -> None:
    with pytest.raises(MMRAGError, match="store.shard_number must be at least 1"):
        ServerOptions(shard_number=0)
    with pytest.raises(
        MMRAGError, match=r"write_consistency_factor \(3\) cannot exceed .*replication_factor \(2\)"
    ):
        ServerOptions(replication_factor=2, write_consistency_factor=3)
    with pytest.raises(MMRAGError, match="'int8'"):
        ServerOptions(quantization="int4")  # type: ignore[arg-type]

    class OldConfig:  # a StoreConfig without the server fields keeps the defaults
        url, shard_number = "http://x", 4

    assert ServerOptions.from_config(OldConfig()) == ServerOptions(shard_number=4)


# -- a loopback stub of the REST API -----------------------------------------------------------------
class _Stub(http.server.BaseHTTPRequestHandler):
    """Answers like a Qdrant server without collections (or 401 to everything), recording requests."""

    requests: list[tuple[str, str, Any, str | None]] = []
    status = 200

    def _answer(self) -> None:
        n = int(self.headers.get("content-length") or 0)
        body = json.loads(self.rfile.read(n)) if n else None
        self.requests.append((self.command, self.path, body, self.headers.get("api-key")))
        if self.status != 200:
            result: Any = {"status": {"error": "Invalid api-key"}}
        elif self.path.endswith("/exists"):
            result = {"result": {"exists": False}, "status": "ok", "time": 0}
        elif "/index" in self.path:
            result = {"result": {"operation_id": 1, "status": "completed"}, "status": "ok", "time": 0}
        else:
            result = {"result": True, "status": "ok", "time": 0}
        data = json.dumps(result).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def stub() -> Iterator[tuple[str, type[_Stub]]]:
    handler = type("Handler", (_Stub,), {"requests": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_new_collection_request_on_the_wire(stub: tuple[str, type[_Stub]]) -> None:
    url, handler = stub
    opts = ServerOptions(shard_number=3, replication_factor=2, quantization="int8", on_disk_payload=True)
    ClientStore(url, StoreSchema({"image": 8}, on_disk=True), "c1", api_key=KEY, options=opts).close()
    puts = {path: body for method, path, body, _ in handler.requests if method == "PUT"}
    body = puts["/collections/c1"]
    assert (body["shard_number"], body["replication_factor"], body["on_disk_payload"]) == (3, 2, True)
    assert body["quantization_config"]["scalar"]["type"] == "int8"
    assert body["vectors"]["image"]["on_disk"] is True
    indexed = {
        b["field_name"] for method, p, b, _ in handler.requests if p.startswith("/collections/c1/index")
    }
    assert {"modality", "path", "page", "t_start"} <= indexed
    assert {key for *_, key in handler.requests} == {KEY}


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_rejected_api_key_is_named(stub: tuple[str, type[_Stub]]) -> None:
    url, handler = stub
    handler.status = 401
    with pytest.raises(MMRAGError, match=rf"server at {url} rejected the API key \(HTTP 401\)") as err:
        ClientStore(url, SCHEMA, api_key="wrong-key")
    assert "wrong-key" not in str(err.value)
    with pytest.raises(MMRAGError, match="wants an API key .* MMRAG_QDRANT_API_KEY"):
        ClientStore(url, SCHEMA)


def test_silent_server_times_out_with_its_url() -> None:
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(MMRAGError, match=rf"{url} did not answer within 1 s"):
            ClientStore(url, SCHEMA, options=ServerOptions(timeout=1))
        assert time.monotonic() - t0 < 10


# -- a real server -----------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Qdrant server exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:  # no key needed for probes
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    pytest.fail(f"the Qdrant server at {url} was not ready after {seconds} s: {log.read_text()[-2000:]}")


@pytest.fixture(scope="session")
def qdrant_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str | None]]:
    """(url, api key) of a real Qdrant server, or a skip saying how to provide one."""
    if os.environ.get("MMRAG_TEST_QDRANT_URL"):
        yield os.environ["MMRAG_TEST_QDRANT_URL"], os.environ.get("MMRAG_TEST_QDRANT_API_KEY") or None
        return
    binary = os.environ.get("MMRAG_QDRANT_BIN") or shutil.which("qdrant")
    if not binary:
        pytest.skip(
            "no Qdrant server: set MMRAG_TEST_QDRANT_URL to a running one, or MMRAG_QDRANT_BIN to the "
            "qdrant release binary (no PyPI, Debian or npm package ships it)"
        )
    root = tmp_path_factory.mktemp("qdrant")
    http_port, grpc_port = _free_port(), _free_port()
    env = {
        **os.environ,
        "QDRANT__SERVICE__HOST": "127.0.0.1",
        "QDRANT__SERVICE__HTTP_PORT": str(http_port),
        "QDRANT__SERVICE__GRPC_PORT": str(grpc_port),
        "QDRANT__SERVICE__API_KEY": KEY,
        "QDRANT__STORAGE__STORAGE_PATH": str(root / "storage"),
        "QDRANT__STORAGE__SNAPSHOTS_PATH": str(root / "snapshots"),
        "QDRANT__TELEMETRY_DISABLED": "true",
    }
    log = root / "qdrant.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([binary], cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        _wait_ready(url, proc, log)
        yield url, KEY
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def _server_store(server: tuple[str, str | None], schema: StoreSchema = SCHEMA, **opts: Any) -> ClientStore:
    url, key = server
    name = f"mmrag-test-{uuid.uuid4().hex[:12]}"
    return ClientStore(url, schema, name, api_key=key, options=ServerOptions(**opts))


@pytest.fixture
def store(qdrant_server: tuple[str, str | None]) -> Iterator[ClientStore]:
    """The `store` of tests/test_store.py's contract tests, on the real server."""
    s = _server_store(qdrant_server)
    s.upsert(make_points())
    yield s
    s.client.delete_collection(s.collection)
    s.close()


@pytest.mark.filterwarnings("ignore:Api key is used with an insecure connection")
def test_sharded_quantized_collection(qdrant_server: tuple[str, str | None]) -> None:
    rng = np.random.default_rng(0)
    schema = StoreSchema({"image": 64}, on_disk=True)
    s = _server_store(qdrant_server, schema, shard_number=3, quantization="int8", on_disk_payload=True)
    try:
        params = s.client.get_collection(s.collection).config
        assert params.params.shard_number == 3 and params.params.on_disk_payload is True
        assert params.quantization_config is not None
        x = rng.normal(size=(600, 64)).astype(np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        s.upsert(
            [
                PointData(point_id("s", str(i)), {"image": v}, payload={"path": str(i)})
                for i, v in enumerate(x)
            ]
        )
        assert s.count() == 600
        assert len(s.client.collection_cluster_info(s.collection).local_shards) == 3
        for i in (3, 301, 599):  # rescoring with the originals: a stored vector finds itself first
            assert s.query([Prefetch("image", dense=x[i])], limit=1)[0].id == point_id("s", str(i))
        url, _ = qdrant_server
        with pytest.raises(MMRAGError, match="rejected the API key"):
            ClientStore(url, schema, s.collection, api_key="not-the-key")
    finally:
        s.client.delete_collection(s.collection)
        s.close()
