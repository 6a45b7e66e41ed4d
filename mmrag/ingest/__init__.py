"""Readers that turn files into `Chunk`s: images, PDF pages, video clips, speech, text and JSON corpora.

    from mmrag.config import IngestConfig
    from mmrag.ingest import discover, iter_chunks

    cfg = IngestConfig()
    files, errors = discover(["./docs", "./clips"], cfg)
    for path in files:
        for chunk in iter_chunks(path, cfg):
            ...

A bad file raises `IngestError` with the reason in words, before or during iteration; the caller
adds the path and moves on. Media is streamed: a video is decoded clip by clip, a PDF page by page.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mmrag.ingest.discover import (
    AUDIO_EXTS,
    IMAGE_EXTS,
    PDF_EXTS,
    SUBTITLE_EXTS,
    TEXT_EXTS,
    VIDEO_EXTS,
    Found,
    Kind,
    discover,
    file_hash,
    find_files,
    inside,
    kind_of,
    sidecars,
)
from mmrag.ingest.subtitles import Cue, cues_between, parse_srt, parse_vtt, read_subtitles
from mmrag.ingest.text import word_windows
from mmrag.types import Chunk, IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig

__all__ = [
    "AUDIO_EXTS",
    "IMAGE_EXTS",
    "PDF_EXTS",
    "SUBTITLE_EXTS",
    "TEXT_EXTS",
    "VIDEO_EXTS",
    "Cue",
    "Found",
    "Kind",
    "cues_between",
    "discover",
    "file_hash",
    "find_files",
    "inside",
    "iter_chunks",
    "kind_of",
    "parse_srt",
    "parse_vtt",
    "read_subtitles",
    "sidecars",
    "word_windows",
]


def iter_chunks(
    path: Path, cfg: IngestConfig, ocr: Callable[[Image.Image], str] | None = None
) -> Iterator[Chunk]:
    """Chunks of one file, by its kind (`kind_of`).

    Args:
        path: The file (made absolute in the chunks' `path`).
        cfg: Ingest settings.
        ocr: Text from an image (`mmrag.encoders.ocr.Ocr`); used for images and for PDF pages without
            a text layer. None skips OCR.

    Yields:
        `image`, `page`, `video`, `audio` or `text` chunks, in file order.

    Raises:
        IngestError: unsupported type, zero bytes, unreadable, corrupt, truncated, encrypted or over
            a limit; the message says which. Any other failure inside a decoder is reported the same
            way, since a broken file can trip any code path of a third-party parser.
    """
    path = Path(path).absolute()
    kind = kind_of(path)
    if kind is None:
        raise IngestError(f"unsupported file type {path.suffix or '(no extension)'!r}")
    try:
        size = path.stat().st_size
    except OSError as e:
        raise IngestError(f"cannot read file: {e.strerror or e}") from e
    if size == 0:
        raise IngestError("zero-byte file")
    from mmrag.ingest.meta import with_document_meta

    chunks = _read_chunks(path, kind, cfg, ocr)
    # titles, names and periods are read from documents; images, videos and JSON records have
    # document fields only when a sidecar or a `meta_file` row gives them
    rules = kind == "pdf" or path.suffix.lower() in (".txt", ".md", ".markdown")
    yield from with_document_meta(chunks, path, cfg.meta_file, cfg.contextual, rules)


def _read_chunks(
    path: Path, kind: Kind, cfg: IngestConfig, ocr: Callable[[Image.Image], str] | None
) -> Iterator[Chunk]:
    try:
        if kind == "image":
            from mmrag.ingest.images import iter_image_chunks

            yield from iter_image_chunks(path, cfg, ocr)
        elif kind == "pdf":
            from mmrag.ingest.pdf import iter_pdf_chunks

            yield from iter_pdf_chunks(path, cfg, ocr)
        elif kind == "video":
            from mmrag.ingest.video import iter_video_chunks

            yield from iter_video_chunks(path, cfg, ocr if cfg.video_ocr else None)
        elif kind == "audio":
            from mmrag.ingest.audio import iter_audio_chunks

            yield from iter_audio_chunks(path, cfg)
        else:
            from mmrag.ingest.text import iter_text_chunks

            yield from iter_text_chunks(path, cfg)
    except MMRAGError:
        raise
    except MemoryError as e:
        raise IngestError("out of memory while reading the file") from e
    except Exception as e:
        raise IngestError(f"cannot read {kind}: {type(e).__name__}: {e}") from e
