"""`mmrag serve` as a perimeter: each request of the review (issue 24) and the answer it now gets.

Host rebinding, missing tokens, cross-site requests, swapped files, oversized bodies and questions,
malformed `k`, abandoned answers, a full queue, and what the responses carry. The index is real
(offline profile) over generated media; answers come from the packaged SmolLM2.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="mmrag serve needs starlette (pip install 'mmrag[serve]')")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (pip install 'mmrag[serve]')")

sys.path.insert(0, str(Path(__file__).parent))
import httpx  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402
from test_serve import GEN, QUESTION, build_index, needs_smollm2, token_client  # noqa: E402

from mmrag.serve.app import create_app  # noqa: E402
from mmrag.serve.guard import ServeSecurity  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402

SECRET = b"TOP-SECRET-LINE root:x:0:0\n"


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("perimeter"))


@pytest.fixture
def app(index_dir: Path) -> Any:
    return create_app(index_dir, preload=False, **GEN)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with token_client(app) as c:
        yield c


def points(client: TestClient) -> list[dict[str, Any]]:
    backend = client.app.state.backend  # type: ignore[attr-defined]
    return backend.call(lambda: list(backend.pipe.store.scroll())).result()


# -- who asks -------------------------------------------------------------------------------------


def test_rebound_host_gets_403_before_any_work(client: TestClient) -> None:
    """DNS rebinding: a page on attacker.example resolves to 127.0.0.1 and sends its own Host."""
    for host in ("attacker.example:8765", "attacker.example", "127.0.0.1.nip.io", ""):
        r = client.get("/api/search", params={"q": "PepsiCo EPS", "k": 2}, headers={"Host": host})
        assert r.status_code == 403 and "hits" not in r.text, host
    for host in ("127.0.0.1:8765", "localhost:8000", "[::1]:8000", "LOCALHOST"):
        assert client.get("/api/info", headers={"Host": host}).status_code == 200, host


def test_allowed_hosts_are_answered(index_dir: Path) -> None:
    sec = ServeSecurity(allow_hosts=("mmrag.lan",))
    app = create_app(index_dir, preload=False, security=sec, **GEN)
    auth = {"Authorization": f"Bearer {sec.token}"}
    with TestClient(app, base_url="http://mmrag.lan:8000", headers=auth) as c:
        assert c.get("/api/info").status_code == 200
        assert c.get("/api/info", headers={"Host": "other.lan"}).status_code == 403


def test_every_api_request_needs_the_token(app: Any) -> None:
    token = app.state.security.token
    hit = None
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        for url in (
            "/api/info",
            "/api/search?q=eggs",
            "/api/ask/stream?q=eggs",
            "/api/thumb/x",
            "/api/media/ab",
        ):
            r = c.get(url)
            assert r.status_code == 401 and "hits" not in r.text, url
            assert c.get(url, headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code == 401
        assert c.post("/api/ask", json={"question": "eggs"}).status_code == 401
        hits = c.get("/api/search?q=flag", headers={"Authorization": f"Bearer {token}"}).json()["hits"]
        hit = next(h for h in hits if h["thumb"])
        assert c.get(hit["thumb"]).status_code == 401  # the picture needs it too
        # the page's own script is public (no index data in it); the page says how to get in
        assert c.get("/static/app.js").status_code == 200
        page = c.get("/")
        assert page.status_code == 401 and "?token=" in page.text and "mmrag" in page.text


def test_page_visit_with_the_token_sets_a_strict_cookie(app: Any) -> None:
    token = app.state.security.token
    with TestClient(app, base_url="http://127.0.0.1:8000", follow_redirects=False) as c:
        assert c.get("/", params={"token": "not-the-token-0123456789"}).status_code == 401
        r = c.get("/", params={"token": token})
        assert r.status_code == 303 and r.headers["location"] == "/"  # the token leaves the address bar
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and token in cookie
        # the cookie alone now opens the page and the API, as the browser sends it
        assert c.get("/").status_code == 200
        assert c.get("/api/info").status_code == 200


def test_off_loopback_never_runs_without_a_token(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    import uvicorn
    from typer.testing import CliRunner

    from mmrag.cli.serve import serve

    with pytest.raises(MMRAGError, match="without a token"):
        ServeSecurity(host="0.0.0.0", token=None).check()
    with pytest.raises(MMRAGError, match="too short"):
        ServeSecurity(token="abc").check()
    ServeSecurity(host="127.0.0.1", token=None).check()  # --no-token: loopback only

    cli = typer.Typer()
    cli.command()(serve)
    refused = CliRunner().invoke(cli, ["--index", str(index_dir), "--host", "0.0.0.0", "--no-token"])
    assert refused.exit_code == 2 and "without a token" in " ".join(refused.output.split())

    seen: dict[str, Any] = {}

    def fake_run(server: Any, sockets: Any = None) -> None:
        seen["host"] = sockets[0].getsockname()[0]
        app = server.config.app
        with TestClient(app, base_url="http://127.0.0.1:8000") as c:
            seen["anonymous"] = c.get("/api/info").status_code
            token = app.state.security.token
            seen["token"] = token
            seen["with_token"] = c.get("/api/info", headers={"Authorization": f"Bearer {token}"}).status_code

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    r = CliRunner().invoke(
        cli, ["--index", str(index_dir), "--host", "0.0.0.0", "--port", "0", "--no-preload"]
    )
    assert r.exit_code == 0, r.output
    assert seen["host"] == "0.0.0.0" and seen["anonymous"] == 401 and seen["with_token"] == 200
    assert f"?token={seen['token']}" in "".join(r.output.split())  # the printed URL carries it
    given = "a-token-of-my-own-0123456789"
    args = ["--index", str(index_dir), "--port", "0", "--no-preload"]
    r = CliRunner().invoke(cli, args, env={"MMRAG_SERVE_TOKEN": given})
    assert r.exit_code == 0 and seen["token"] == given


def test_cross_site_requests_are_refused(client: TestClient) -> None:
    body = {"question": QUESTION}
    r = client.post("/api/ask", json=body, headers={"Origin": "http://attacker.example"})
    assert r.status_code == 403
    r = client.get("/api/ask/stream", params={"q": QUESTION}, headers={"Origin": "null"})
    assert r.status_code == 403
    # a "simple" cross-site form post (text/plain) never reaches the models
    r = client.post("/api/ask", content=json.dumps(body), headers={"Content-Type": "text/plain"})
    assert r.status_code == 415
    # the page's own origin is fine
    assert client.get("/api/info", headers={"Origin": "http://127.0.0.1:8000"}).status_code == 200


# -- what it serves -------------------------------------------------------------------------------


def test_swapped_files_are_never_served(tmp_path: Path) -> None:
    """A video, a picture and a PDF swapped after indexing: for a link to a secret, or for other bytes."""
    idx = build_index(tmp_path)
    corpus = tmp_path / "corpus"
    secret = tmp_path / "passwd"
    secret.write_bytes(SECRET * 2000)
    app = create_app(idx, preload=False, **GEN)
    with token_client(app) as c:
        pts = [p for p in points(c) if p["payload"]["modality"] in ("image", "video", "page")]
        by_name = {Path(p["payload"]["path"]).name: p for p in pts}
        video = by_name["cooking.mp4"]["payload"]["file_hash"]
        thumbs = {n: f"/api/thumb/{by_name[n]['id']}" for n in ("flag.png", "report.pdf", "cooking.mp4")}
        assert c.get(f"/api/media/{video}").status_code == 200
        assert all(c.get(u).status_code == 200 for u in thumbs.values())  # cached from now on
        for name in ("cooking.mp4", "flag.png", "report.pdf"):
            (corpus / name).unlink()
            (corpus / name).symlink_to(secret)
        media = c.get(f"/api/media/{video}")
        ranged = c.get(f"/api/media/{video}", headers={"Range": "bytes=0-99"})
        for r in [media, ranged, *(c.get(u) for u in thumbs.values())]:
            assert r.status_code == 404 and b"TOP-SECRET" not in r.content and b"root:" not in r.content
    # other bytes of the same size and modification time, in a new file (another inode)
    (tmp_path / "again").mkdir()
    idx2 = build_index(tmp_path / "again")
    corpus2 = tmp_path / "again" / "corpus"
    video = corpus2 / "cooking.mp4"
    st = video.stat()
    impostor = tmp_path / "again" / "impostor.mp4"
    impostor.write_bytes(SECRET[:1] * st.st_size)
    os.utime(impostor, ns=(st.st_atime_ns, st.st_mtime_ns))
    app2 = create_app(idx2, preload=False, **GEN)
    with token_client(app2) as c:
        from mmrag.ingest.discover import file_hash

        url = f"/api/media/{file_hash(video)}"
        assert c.get(url).status_code == 200
        os.replace(impostor, video)
        assert video.stat().st_size == st.st_size and video.stat().st_mtime_ns == st.st_mtime_ns
        r = c.get(url)
        assert r.status_code == 404 and SECRET[:1] * 64 not in r.content


def test_responses_carry_nosniff_and_private_caching(client: TestClient) -> None:
    hits = client.get("/api/search", params={"q": "whisking eggs", "k": 8}).json()["hits"]
    video = next(h for h in hits if h["media"])
    responses = {
        "json": client.get("/api/info"),
        "static": client.get("/static/app.js"),
        "page": client.get("/"),
        "thumb": client.get(video["thumb"]),
        "media": client.get(video["media"]),
        "error": client.get("/api/search"),
        "denied": client.get("/api/info", headers={"Host": "evil.example"}),
    }
    for name, r in responses.items():
        assert r.headers.get("x-content-type-options") == "nosniff", name
    assert responses["thumb"].status_code == 200 and "private" in responses["thumb"].headers["cache-control"]
    assert responses["media"].status_code == 200 and "private" in responses["media"].headers["cache-control"]


def test_clients_never_see_absolute_paths(client: TestClient, index_dir: Path) -> None:
    root = str(index_dir.parent)
    info = client.get("/api/info")
    hits = client.get("/api/search", params={"q": "whisking eggs", "k": 8})
    assert info.status_code == 200 and hits.status_code == 200
    assert root not in info.text and root not in hits.text
    assert info.json()["index"] == index_dir.name
    paths = {h["path"] for h in hits.json()["hits"]}
    assert "corpus/cooking.mp4" in paths and all(not p.startswith("/") for p in paths)
    bad = client.get("/api/search", params={"q": "eggs", "modality": "smell"})
    assert bad.status_code == 400 and root not in bad.text


def test_unexpected_errors_give_an_id_not_details(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    backend = client.app.state.backend  # type: ignore[attr-defined]

    def broken() -> dict[str, Any]:
        raise RuntimeError("disk full at /home/someone/secret/place")

    monkeypatch.setattr(backend, "info", broken)
    with caplog.at_level("ERROR", logger="mmrag.serve"):
        r = client.get("/api/info")
    assert r.status_code == 500
    body = r.json()
    assert body["error"] == "internal error" and len(body["id"]) == 12
    assert "secret" not in r.text and "RuntimeError" not in r.text
    assert body["id"] in caplog.text and "disk full" in caplog.text  # the details are in the log


# -- how much it takes ----------------------------------------------------------------------------


def test_bodies_over_the_cap_get_413_unread(client: TestClient) -> None:
    big = b'{"question": "' + b"a" * (2 << 20) + b'"}'
    r = client.post("/api/ask", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413

    def chunks() -> Iterator[bytes]:  # no Content-Length: cut off as it passes the cap
        yield b'{"question": "'
        for _ in range(40):
            yield b"a" * 65536
        yield b'"}'

    r = client.post("/api/ask", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_over_long_questions_are_refused(index_dir: Path) -> None:
    with token_client(create_app(index_dir, preload=False, **GEN)) as c:
        long = "what " * 500  # 2,500 characters
        assert c.get("/api/search", params={"q": long}).status_code == 400
        r = c.post("/api/ask", json={"question": long})
        assert r.status_code == 400 and "characters" in r.json()["error"]
    needs_smollm2()
    sec = ServeSecurity(max_question_tokens=20)
    with token_client(create_app(index_dir, preload=False, security=sec, **GEN)) as c:
        r = c.post("/api/ask", json={"question": "How do they whisk the eggs? " * 6})
        assert r.status_code == 400 and "tokens" in r.json()["error"]


@pytest.mark.parametrize("k", ["1e400", "true", "1.9", "-1", "0", "51", "ten", "9" * 400])
def test_k_must_be_a_whole_number_in_range(client: TestClient, k: str) -> None:
    assert client.get("/api/search", params={"q": "eggs", "k": k}).status_code == 400
    body = b'{"question": "eggs", "k": ' + k.encode() + b"}"
    if k == "ten":
        body = b'{"question": "eggs", "k": "ten"}'
    r = client.post("/api/ask", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]


def test_a_full_queue_answers_429(index_dir: Path) -> None:
    sec = ServeSecurity(queue=2)
    app = create_app(index_dir, preload=False, security=sec, **GEN)
    with token_client(app) as c:
        backend = app.state.backend
        gate = threading.Event()
        held = [backend.call(gate.wait), backend.call(gate.wait)]
        r = c.get("/api/search", params={"q": "eggs"})
        assert r.status_code == 429 and int(r.headers["retry-after"]) > 0
        gate.set()
        for job in held:
            job.result(10)
        assert c.get("/api/search", params={"q": "eggs"}).status_code == 200


def _open_stream(client: httpx.Client, params: dict[str, Any], read_token: bool) -> httpx.Response:
    """Open an answer stream (reading to its first token, if asked); the caller abandons it."""
    r = client.send(client.build_request("GET", "/api/ask/stream", params=params), stream=True)
    assert r.status_code == 200
    if read_token:
        for line in r.iter_lines():
            if line.startswith("event: token"):
                break
    return r


def _generating() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "mmrag-generate" and t.is_alive()]


@pytest.mark.slow
def test_abandoned_answers_stop_generating(index_dir: Path) -> None:
    """Answers opened and abandoned, then a search: it waits for none of them, and nothing generates on."""
    needs_smollm2()
    from serving import serving

    gen = {**GEN, "generate.max_new_tokens": 160, "generate.stop_on_repetition": False}
    app = create_app(index_dir, preload=True, **gen)
    auth = {"Authorization": f"Bearer {app.state.security.token}"}
    question = "Describe everything about the cooking show in detail."
    params = {"q": question, "k": 4}

    def search_time(c: httpx.Client) -> float:
        t0 = time.perf_counter()
        assert c.get("/api/search", params={"q": "eggs"}).status_code == 200
        return time.perf_counter() - t0

    with serving(app) as url, httpx.Client(base_url=url, headers=auth, timeout=300) as c:
        t0 = time.perf_counter()
        full = c.post("/api/ask", json={"question": question, "k": 4})
        t_answer = time.perf_counter() - t0
        assert full.status_code == 200 and full.json()["answer"]
        t_idle = search_time(c)

        # Three streams: the first read to its first token, two waiting behind it; all dropped.
        streams = [_open_stream(c, params, read_token=i == 0) for i in range(3)]
        for r in streams:
            r.close()
        t_streams = search_time(c)
        time.sleep(1.0)
        orphans = _generating()  # a generation whose reader stopped, still spending the cores

        # An answer asked without streaming, whose client gives up after a second.
        with httpx.Client(base_url=url, headers=auth, timeout=1.0) as impatient:
            with pytest.raises(httpx.TimeoutException):
                impatient.post("/api/ask", json={"question": question, "k": 4})
        t_post = search_time(c)
    print(
        f"answer {t_answer:.2f} s; search idle {t_idle:.3f} s, after 3 abandoned streams {t_streams:.3f} s "
        f"(ratio {t_streams / t_answer:.3f}), after an abandoned POST {t_post:.3f} s "
        f"(ratio {t_post / t_answer:.3f})"
    )
    # had they gone on generating, each search would have waited for one or more whole answers
    assert t_streams / t_answer < 0.35 and t_post / t_answer < 0.35
    assert not orphans


def test_index_time_links_outside_the_folder_are_left_out(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "inside.txt").write_text("The ferry leaves at noon from the north pier every day.")
    outside = tmp_path / "private"
    outside.mkdir()
    (outside / "diary.txt").write_text("My private diary entry about the lighthouse keeper.")
    (corpus / "diary.txt").symlink_to(outside / "diary.txt")
    env = {"MMRAG_ENCODERS_OCR": "0"}
    args = ["index", str(corpus), "--index", str(tmp_path / "idx"), "--profile", "offline"]
    r = CliRunner().invoke(app, args, env=env)
    assert r.exit_code == 0, r.output
    text = " ".join(r.stderr.split())
    assert "indexed 1 files" in text and "diary.txt" in text and "--follow-symlinks" in text
    r = CliRunner().invoke(app, [*args, "--follow-symlinks"], env=env)
    assert r.exit_code == 0 and "indexed 1 files" in " ".join(r.stderr.split()), r.output
    shutil.rmtree(outside)
