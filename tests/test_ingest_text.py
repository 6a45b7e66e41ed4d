"""Ingest: subtitles, text and JSON corpora (the readers of media are in test_ingest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from media import (
    touch,
)

from mmrag.config import IngestConfig
from mmrag.ingest import (
    Cue,
    cues_between,
    iter_chunks,
    parse_srt,
    parse_vtt,
    read_subtitles,
    word_windows,
)
from mmrag.types import IngestError, MMRAGError

# --- subtitles -------------------------------------------------------------------------------


def test_parse_srt_skips_malformed_cues() -> None:
    text = (
        "1\r\n00:00:01,000 --> 00:00:03,500\r\nHello <i>world</i>\r\nsecond &amp; line\r\n\r\n"
        "2\r\ngarbage --> nonsense\r\nlost cue\r\n\r\n"
        "3\r\n00:00:09,000 --> 00:00:08,000\r\nends before it starts\r\n\r\n"
        "4\r\n00:01:05,5 --> 00:01:07,000\r\n{\\an8}Top line\r\n"
        "5\r\n00:01:08,000 --> 00:01:09,000\r\nno blank line before\r\n"
    )
    assert parse_srt(text) == [
        Cue(1.0, 3.5, "Hello world second & line"),
        Cue(65.5, 67.0, "Top line"),
        Cue(68.0, 69.0, "no blank line before"),
    ]


def test_parse_vtt_header_notes_settings() -> None:
    text = (
        "WEBVTT - a title\n\nNOTE a note\nspanning lines\n\nSTYLE\n::cue { color: red }\n\n"
        "intro\n00:01.000 --> 00:02.500 align:start position:10%\n<v Roger>Hi</v> <c.yellow>there</c>\n\n"
        "01:00:00.000 --> 01:00:01.000\nan hour in\n"
    )
    assert parse_vtt(text) == [Cue(1.0, 2.5, "Hi there"), Cue(3600.0, 3601.0, "an hour in")]


def test_read_subtitles_encodings(tmp_path: Path) -> None:
    body = "1\n00:00:00,000 --> 00:00:01,000\nCaf\u00e9 cr\u00e8me\n"
    for name, data in [
        ("utf8.srt", body.encode("utf-8")),
        ("bom.srt", body.encode("utf-8-sig")),
        ("cp1252.srt", body.encode("cp1252")),
        ("utf16.srt", body.encode("utf-16")),
    ]:
        assert read_subtitles(touch(tmp_path / name, data)) == [Cue(0.0, 1.0, "Caf\u00e9 cr\u00e8me")], name


def test_cues_between_overlap() -> None:
    cues = [Cue(1, 3, "a"), Cue(2, 4, "a"), Cue(9, 12, "b"), Cue(12, 12, "c"), Cue(20, 21, "d")]
    assert cues_between(cues, 0, 10) == "a\nb"  # the repeated roll-up line once
    assert cues_between(cues, 10, 20) == "b\nc"
    assert cues_between(cues, 12.5, 20) == ""


# --- text and JSON ---------------------------------------------------------------------------

# (punctuation, separator) after each word; words are numbered so that each has one place
_tokens = st.lists(
    st.tuples(st.sampled_from(["", "", "", ".", "?", ".\u201d", ","]), st.sampled_from([" ", " ", "\n"]))
)


@settings(max_examples=80, deadline=None)
@given(_tokens, st.integers(1, 30), st.data())
def test_word_windows_properties(tokens: list[tuple[str, str]], size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1))
    text = "".join(f"w{i}{p}{sep}" for i, (p, sep) in enumerate(tokens))
    words = text.split()
    windows = word_windows(text, size, overlap)
    assert all(0 < len(w.split()) <= size and w in text for w in windows)
    # the windows run through the words in order, each starting inside or right after the previous one
    end, previous = 0, -1
    for w in windows:
        ws = w.split()
        start = words.index(ws[0])
        assert words[start : start + len(ws)] == ws
        assert max(previous + 1, end - overlap) <= start <= end
        end, previous = start + len(ws), start
    assert end == len(words)


def test_word_windows_keep_sentences_whole() -> None:
    sentences = [f"Sentence {i} has exactly six words." for i in range(20)]
    text = " ".join(sentences)
    windows = word_windows(text, 20, 8)
    assert len(windows) > 3
    for w in windows:
        assert w.startswith("Sentence") and w.endswith("words.")
    assert all(any(s in w for w in windows) for s in sentences)
    with pytest.raises(MMRAGError):
        word_windows(text, 10, 10)


def test_text_file_chunks(tmp_path: Path) -> None:
    path = touch(tmp_path / "notes.md", " ".join(f"w{i}" for i in range(50)).encode())
    chunks = list(iter_chunks(path, IngestConfig(chunk_words=20, chunk_overlap=5)))
    assert [c.locator for c in chunks] == ["chunk=0", "chunk=1", "chunk=2"]
    assert chunks[0].text.split()[-5:] == chunks[1].text.split()[:5]
    assert all(c.modality == "text" and c.path == str(path) for c in chunks)
    with pytest.raises(IngestError, match="no text"):
        list(iter_chunks(touch(tmp_path / "blank.txt", b" \n\n "), IngestConfig()))
    with pytest.raises(IngestError, match="binary"):
        list(iter_chunks(touch(tmp_path / "bin.txt", b"\x00\x01\x02abc"), IngestConfig()))


def test_multihop_corpus_json_keeps_metadata(tmp_path: Path) -> None:
    article = {
        "title": "T1",
        "author": "A",
        "source": "The Verge",
        "published_at": "2023-09-26T17:01:22+00:00",
        "category": "technology",
        "url": "https://example.org/1",
        "body": " ".join(["word"] * 250) + " end.",
    }
    other = dict(article, title="T2", body="Short body.")
    path = touch(tmp_path / "corpus.json", json.dumps([article, other, {"title": "no body"}]).encode())
    chunks = list(iter_chunks(path, IngestConfig(chunk_words=180, chunk_overlap=30)))
    assert [c.locator for c in chunks] == ["record=0;chunk=0", "record=0;chunk=1", "record=1;chunk=0"]
    assert chunks[2].text == "Short body."
    for c in chunks[:2]:
        # the fields, plus the calendar day that query filters match on
        assert c.meta == {**{k: v for k, v in article.items() if k != "body"}, "published_date": "2023-09-26"}
    assert chunks[1].text.endswith("end.")


def test_articles_facts_jsonl_and_generic_records(tmp_path: Path) -> None:
    rows = [
        {"title": "T", "source": "S", "facts": ["First fact.", "Second fact."], "doc_id": "d0"},
        {"text": "plain"},
    ]
    path = touch(tmp_path / "facts.jsonl", ("\n".join(json.dumps(r) for r in rows) + "\n\n").encode())
    chunks = list(iter_chunks(path, IngestConfig()))
    assert [(c.locator, c.text) for c in chunks] == [
        ("line=1;chunk=0", "First fact.\nSecond fact."),
        ("line=2;chunk=0", "plain"),
    ]
    assert chunks[0].meta == {"title": "T", "source": "S", "doc_id": "d0"}
    wrapped = touch(tmp_path / "w.json", json.dumps({"data": [{"content": "inside", "n": 1}]}).encode())
    assert [(c.text, c.meta) for c in iter_chunks(wrapped, IngestConfig())] == [("inside", {"n": 1})]
    with pytest.raises(IngestError, match="line 2"):
        list(iter_chunks(touch(tmp_path / "bad.jsonl", b'{"text": "a"}\n{oops\n'), IngestConfig()))
    with pytest.raises(IngestError, match="no text records"):
        list(iter_chunks(touch(tmp_path / "meta.json", b'[{"image": "a.png"}]'), IngestConfig()))
