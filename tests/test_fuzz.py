"""Property-based fuzzing (hypothesis) of the parsers that read user input, on a bounded budget.

Each parser either returns well-formed output or raises `MMRAGError` (`IngestError` for files) with
a message, never another exception: subtitles (never raise on any text), the config loader (TOML
files, `MMRAG_*` variables), the query-filter parser, and the text/JSON/JSONL corpus loaders.
`EXAMPLES` bounds every test; the whole module runs in well under 30 s on two cores.
"""

from __future__ import annotations

import json
import math
import tempfile
from pathlib import Path
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from mmrag.config import IngestConfig, MMRAGConfig
from mmrag.ingest import parse_srt, parse_vtt, read_subtitles
from mmrag.ingest.text import iter_text_chunks
from mmrag.retrieve.query import make_filter, parse_range
from mmrag.store.base import SearchFilter
from mmrag.types import IngestError, MMRAGError

EXAMPLES = 150
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# -- subtitles --------------------------------------------------------------------------------------
_stamp = st.builds(
    lambda h, m, s, ms, sep: f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}",
    st.integers(0, 99),
    st.integers(0, 70),
    st.integers(0, 70),
    st.integers(0, 999),
    st.sampled_from([",", "."]),
)
_cue_line = st.one_of(
    st.builds(lambda a, b, tail: f"{a} --> {b}{tail}", _stamp, _stamp, st.sampled_from(["", " align:start"])),
    st.text(max_size=40),
    st.sampled_from(["", "WEBVTT", "NOTE x", "1", "<i>hi</i> &amp; {\\an8}", "   ", "\r", "-->"]),
)
_subtitle_text = st.one_of(st.text(max_size=400), st.lists(_cue_line, max_size=40).map("\n".join))


@FUZZ
@given(_subtitle_text)
@example("1\n00:00:01,000 --> 00:00:00,500\nbackwards\n\n2\n00:00:02,000 --> 00:00:03,000\n<b></b>\n")
def test_subtitle_parsers_never_raise(text: str) -> None:
    for parse in (parse_srt, parse_vtt):
        cues = parse(text)
        assert [(c.start, c.end) for c in cues] == sorted((c.start, c.end) for c in cues)
        for c in cues:
            assert 0 <= c.start <= c.end and math.isfinite(c.end)
            assert c.text and c.text == c.text.strip() and "\n" not in c.text


@FUZZ
@given(st.binary(max_size=600), st.sampled_from([".srt", ".vtt"]))
def test_subtitle_files_of_any_bytes(data: bytes, ext: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"s{ext}"
        path.write_bytes(data)
        cues = read_subtitles(path)  # any bytes decode (latin-1 maps them all): no error at all
        assert all(c.text and c.start <= c.end for c in cues)


# -- config -----------------------------------------------------------------------------------------
_FIELDS = {
    section: list(get_type_hints(type(getattr(MMRAGConfig(), section))))
    for section in ("encoders", "store", "ingest", "search", "rerank")
}
_scalar = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
    st.text(max_size=12),
)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=3))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are valid TOML basic-string escapes
    return repr(v)


def _toml(doc: dict[str, Any]) -> str:
    top = [f"{json.dumps(k)} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    tables = [
        f"[{json.dumps(k)}]\n" + "\n".join(f"{json.dumps(n)} = {_toml_value(x)}" for n, x in v.items())
        for k, v in doc.items()
        if isinstance(v, dict)
    ]
    return "\n".join(top) + "\n\n" + "\n\n".join(tables) + "\n"


_section = st.sampled_from(list(_FIELDS))
_table = _section.flatmap(
    lambda s: st.tuples(
        st.just(s),
        st.dictionaries(st.one_of(st.sampled_from(_FIELDS[s]), st.text(max_size=6)), _value, max_size=4),
    )
)
_toml_doc = st.builds(
    lambda tables, top: {**dict(tables), **top},
    st.lists(_table, max_size=3),
    st.dictionaries(st.sampled_from(["profile", "index", "bogus"]), _scalar, max_size=2),
)
_env_names = [f"MMRAG_{s.upper()}_{f.upper()}" for s, fs in _FIELDS.items() for f in fs]
_env = st.dictionaries(
    st.sampled_from(
        [*_env_names, "MMRAG_INDEX", "MMRAG_PROFILE", "MMRAG_QDRANT_URL", "MMRAG_QDRANT_API_KEY"]
    ),
    st.one_of(st.text(max_size=12), st.sampled_from(["1", "0", "true", "none", "1e400", "-5", "nan", "rrf"])),
    max_size=6,
).map(lambda d: {k: v.replace("\0", "") for k, v in d.items()})


def _check_types(cfg: MMRAGConfig) -> None:
    for section in _FIELDS:
        obj = getattr(cfg, section)
        for name, hint in get_type_hints(type(obj)).items():
            value = getattr(obj, name)
            if get_origin(hint) is Literal:  # its values are strings such as "int8": not a type name
                assert value in get_args(hint), (section, name, value)
                continue
            kinds = {"int": int, "float": float, "bool": bool, "str": str}
            want = [k for k in kinds if k in str(hint)]
            if value is None:
                assert "None" in str(hint), (section, name)
            elif want:
                assert isinstance(value, tuple(kinds[k] for k in want)), (section, name, value)


@FUZZ
@given(_toml_doc, _env)
@example({"ingest": {"max_pdf_pages": [1]}}, {})
@example({"profile": 7}, {"MMRAG_SEARCH_FUSION": "banana"})
def test_config_loader(doc: dict[str, Any], env: dict[str, str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mmrag.toml"
        path.write_text(_toml(doc), encoding="utf-8")
        try:
            cfg = MMRAGConfig.load(config_file=path, env=env)
        except MMRAGError as e:
            assert str(e)
            return
    _check_types(cfg)
    assert cfg.profile in ("default", "offline")
    assert "api_key" not in cfg.to_dict()["store"]


@FUZZ
@given(st.text(max_size=300))
def test_config_file_of_any_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mmrag.toml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            _check_types(MMRAGConfig.load(config_file=path, env={}))
        except MMRAGError as e:
            assert str(e)


# -- query filters ----------------------------------------------------------------------------------
_range = st.one_of(
    st.text(max_size=20),
    st.builds(
        lambda a, sep, b: f"{a}{sep}{b}",
        st.one_of(st.just(""), st.integers(-50, 5000).map(str), st.floats(-1e3, 1e3).map(str)),
        st.sampled_from(["-", ":", "..", " - ", ""]),
        st.one_of(st.just(""), st.integers(-50, 5000).map(str), st.text("0123456789.", max_size=8)),
    ),
)


@FUZZ
@given(_range)
@example("9" * 400)
@example("1-" + "9" * 400)
def test_parse_range(spec: str) -> None:
    try:
        lo, hi = parse_range(spec, "page")
    except MMRAGError as e:
        assert "range" in str(e)
        return
    for v in (lo, hi):
        assert v is None or math.isfinite(v)
    if lo is not None and hi is not None:
        assert lo <= hi


@FUZZ
@given(
    st.one_of(st.none(), st.sampled_from(["image", "page", "video", "text"]), st.lists(st.text(max_size=6))),
    st.one_of(st.none(), st.text(max_size=12)),
    st.one_of(st.none(), _range),
    st.one_of(st.none(), _range),
)
@example(None, None, "9" * 400, None)
def test_make_filter(modality: Any, path: str | None, pages: str | None, time: str | None) -> None:
    known = ["/data/a.pdf", "/data/sub/b.mp4", "/x/[weird]*.txt"]
    try:
        flt = make_filter(modality, path, pages, time, known_paths=known)
    except MMRAGError as e:
        assert str(e)
        return
    assert flt is None or (isinstance(flt, SearchFilter) and not flt.is_empty())
    if flt is not None and flt.page_min is not None and flt.page_max is not None:
        assert flt.page_min <= flt.page_max


# -- text, JSON and JSONL corpora -------------------------------------------------------------------
_json_like = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30)),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["body", "text", "content", "facts", "title", "x"]), inner, max_size=4
        ),
    ),
    max_leaves=12,
)
_corpus_bytes = st.one_of(
    st.binary(max_size=400),
    _json_like.map(lambda v: json.dumps(v).encode()),
    st.lists(_json_like, max_size=4).map(lambda rows: "\n".join(json.dumps(r) for r in rows).encode()),
)


@FUZZ
@given(_corpus_bytes, st.sampled_from([".txt", ".md", ".json", ".jsonl"]))
@example(b"[" * 100_000 + b"]" * 100_000, ".json")
@example(b'{"text": "a"}\n' + b"[" * 100_000, ".jsonl")
@example(b'[{"body": "x", "n": ' + b"9" * 5000 + b"}]", ".json")
@example(b'{"text": "\\ud800 lone surrogate"}', ".jsonl")
def test_text_loaders(data: bytes, ext: str) -> None:
    cfg = IngestConfig(chunk_words=20, chunk_overlap=5)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"corpus{ext}"
        path.write_bytes(data)
        try:
            chunks = list(iter_text_chunks(path, cfg))
        except IngestError as e:
            assert str(e)
            return
    assert chunks
    for c in chunks:
        assert c.modality == "text" and c.text and c.text.strip() and c.path == str(path)
