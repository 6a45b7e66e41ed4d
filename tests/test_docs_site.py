"""The docs site builds with `mkdocs build --strict` (a broken link, anchor or API reference fails it),
holds the guides and the API reference the README links to, and its configuration page lists every
command-line option and config field the code declares (rendered at build time by docs/hooks/)."""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs site needs mkdocs (pip install -e '.[dev]')")
pytest.importorskip("material", reason="the docs theme is mkdocs-material (pip install -e '.[dev]')")
pytest.importorskip("mkdocstrings_handlers.python", reason="the API reference needs mkdocstrings-python")

ROOT = Path(__file__).resolve().parents[1]
GUIDES = [
    "getting-started", "documents", "images", "video-audio", "answers", "web", "security", "llama-index",
    "evaluation", "configuration", "scale-out", "cluster", "models", "architecture", "benchmarks",
]  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)]
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout}\n{done.stderr}"
    return out


def text(site: Path, page: str) -> str:
    """A built page's text, tags stripped."""
    html = (site / page / "index.html").read_text(encoding="utf-8")
    return unescape(re.sub(r"<[^>]+>", " ", html))


def test_every_guide_is_built(site: Path) -> None:
    missing = [g for g in GUIDES if not (site / g / "index.html").is_file()]
    assert not missing, f"pages not built: {missing}"
    assert "Retrieval-augmented multimodal LLMs" in text(site, ".")


def test_the_api_reference_documents_the_front_door(site: Path) -> None:
    pipeline = text(site, "reference/pipeline")
    for name in ("Pipeline", "from_config", "load", "index", "search", "ask", "IndexMismatchError"):
        assert name in pipeline, name
    results = text(site, "reference/results")
    for name in ("Hit", "IndexReport", "Answer", "cited", "invalid_labels", "Source", "locator"):
        assert name in results, name
    config = text(site, "reference/config")
    from mmrag import config as config_module

    classes = [
        n
        for n, v in vars(config_module).items()
        if dataclasses.is_dataclass(v) and v.__module__ == config_module.__name__
    ]
    assert len(classes) >= 7 and all(c in config for c in classes), classes
    adapters = text(site, "reference/llama-index")
    for name in (
        "MMRAGRetriever",
        "MMRAGReranker",
        "MMRAGLLM",
        "MMRAGEmbedding",
        "VideoClipReader",
        "node_to_hit",
    ):
        assert name in adapters, name


def test_the_configuration_page_lists_every_option_and_field(site: Path) -> None:
    """Rendered from the declarations at build time: a new option or field shows up by itself."""
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import reference
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))
    page = text(site, "configuration")
    options = reference.cli_options()
    assert len(options) >= 60 and any("--qdrant-url" in flags for flags in options)
    flags = {f.strip("`") for group in options for f in re.split(r", | / ", group)}
    missing_flags = sorted(f for f in flags if f not in page)
    assert not missing_flags, missing_flags
    sections = reference.config_sections()
    fields = [(s, f.name) for s, (_, fs) in sections.items() for f in fs]
    assert len(fields) >= 60 and ("ingest", "clip_seconds") in fields
    assert all(f"[{s}]" in page for s in sections if s), "a config section has no table"
    missing_fields = [f"{s}.{n}" for s, n in fields if n not in page]
    assert not missing_fields, missing_fields
    assert "MMRAG_INGEST_CLIP_SECONDS" in page and "MMRAG_QDRANT_URL" in page
    assert "<!-- generated" not in page


def test_field_docs_are_read_from_the_source() -> None:
    sys.path.insert(0, str(ROOT / "docs" / "hooks"))
    try:
        import reference
    finally:
        sys.path.remove(str(ROOT / "docs" / "hooks"))

    @dataclasses.dataclass
    class Toy:
        """A toy."""

        a: int = 1
        """The first."""
        b: str = "x"
        c: float = 0.5
        """The third,
        on two lines."""

    assert reference.field_docs(Toy) == {"a": "The first.", "c": "The third,\non two lines."}
    assert reference.cell("a <b> `<c>` | d") == "a &lt;b&gt; `<c>` \\| d"
