"""llama-index readers over mmrag's media ingest: video clips and rendered PDF pages as `ImageDocument`s,
transcribed speech in audio files as `Document`s.

    from llama_index.core import SimpleDirectoryReader
    readers = {".mp4": VideoClipReader(), ".pdf": PDFPageImageReader(), ".mp3": AudioTranscriptReader()}
    docs = SimpleDirectoryReader("./media", file_extractor=readers).load_data()

They stream (`lazy_load_data`): a video is decoded clip by clip, a PDF read page by page. Each
document's id is the point id mmrag's index gives the same clip or page (same file, same
locator), and its metadata carries the same provenance as `MMRAGRetriever`'s nodes.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llama_index.core.readers.base import BaseReader
from llama_index.core.schema import Document, ImageDocument

from mmrag.types import Chunk, Hit, MMRAGError

from .nodes import LLM_KEYS, encode_image, hit_metadata

if TYPE_CHECKING:
    from mmrag.config import IngestConfig


def _local_path(file: str | Path, fs: Any) -> Path:
    from fsspec.implementations.local import LocalFileSystem

    if fs is not None and not isinstance(fs, LocalFileSystem):
        raise MMRAGError(f"{file}: mmrag readers read local files only (PyAV and PDFium need a real path)")
    return Path(file).absolute()


def _document(chunk: Chunk, file_id: str, extra_info: dict[str, Any] | None, fmt: str) -> Document:
    """A chunk as an `ImageDocument` (its first image inline) or, without an image, a `Document`."""
    from mmrag.store.base import point_id

    hit = Hit(
        id=point_id(file_id, chunk.locator),
        score=0.0,
        modality=chunk.modality,
        path=chunk.path,
        page=chunk.page,
        t_start=chunk.t_start,
        t_end=chunk.t_end,
        payload={k: v for k, v in chunk.meta.items() if k != "embed_text"},
    )
    meta = {**(extra_info or {}), **hit_metadata(hit)}
    meta.pop("score")  # nothing was searched
    meta.setdefault("file_path", chunk.path)
    common: dict[str, Any] = {
        "id_": hit.id,
        "text": chunk.text or "",
        "metadata": meta,
        "excluded_llm_metadata_keys": [k for k in meta if k not in LLM_KEYS],
        "excluded_embed_metadata_keys": [k for k in meta if k not in ("file_name", "title")],
    }
    if not chunk.images:
        return Document(**common)
    image = encode_image(chunk.images[0], fmt)
    return ImageDocument(image=image, image_mimetype=f"image/{fmt.lower()}", **common)


def _file_id(path: Path) -> str:
    from mmrag.ingest.discover import file_hash

    try:
        return file_hash(path)
    except OSError as e:
        raise MMRAGError(f"{path}: cannot read file: {e.strerror or e}") from e


class VideoClipReader(BaseReader):
    """A video as one `ImageDocument` per clip: a keyframe, the subtitles shown during it, its times.

    Metadata: `path`, `file_path`, `file_name`, `modality="video"`, `t_start`, `t_end` (seconds),
    `locator` (`00:00:10–00:00:20`), `point_id`, and the stream's `fps`, `width`, `height`, `duration`.
    Subtitles come from a sidecar `<stem>.srt` / `<stem>.vtt`, as in mmrag's index.

    Args:
        clip_seconds: Clip length.
        config: Other ingest settings (`clip_seconds` here wins); default `IngestConfig()`.
    """

    def __init__(self, clip_seconds: float | None = None, config: IngestConfig | None = None) -> None:
        import dataclasses

        from mmrag.config import IngestConfig

        cfg = config or IngestConfig()
        # One kept frame per clip: the keyframe is its middle frame.
        self.config = dataclasses.replace(
            cfg, clip_seconds=clip_seconds or cfg.clip_seconds, frames_per_clip=1
        )

    def lazy_load_data(
        self, file: str | Path, extra_info: dict[str, Any] | None = None, fs: Any = None
    ) -> Iterator[Document]:
        """Documents of one video file, clip by clip.

        Raises:
            MMRAGError: not a video, corrupt or truncated (the message names the file).
        """
        from mmrag.ingest.video import iter_video_chunks

        path = _local_path(file, fs)
        file_id = _file_id(path)
        try:
            for chunk in iter_video_chunks(path, self.config):
                yield _document(chunk, file_id, extra_info, "JPEG")
        except MMRAGError as e:
            raise MMRAGError(f"{path}: {e}") from e


class AudioTranscriptReader(BaseReader):
    """An audio file as one `Document` per stretch of speech: its transcript and its time range.

    Metadata: `path`, `file_path`, `file_name`, `modality="audio"`, `t_start`, `t_end` (seconds),
    `locator` (`00:00:00–00:00:08`), `point_id`, `duration`, `language` (detected or given) and
    `transcript` (`asr:<model>`). Transcripts come from mmrag's cache when the file was transcribed
    before with the same settings.

    Args:
        clip_seconds: Longest stretch of speech in one document (cues are never split).
        config: Other ingest settings (`asr_model`, `asr_language`, ...); default `IngestConfig()`
            with the `offline` profile's packaged Whisper base, so documents match what
            `mmrag index --profile offline` stores.
    """

    def __init__(self, clip_seconds: float | None = None, config: IngestConfig | None = None) -> None:
        import dataclasses

        from mmrag.config import IngestConfig, MMRAGConfig

        cfg = config or IngestConfig(asr_model=MMRAGConfig.from_profile("offline").ingest.asr_model)
        self.config = dataclasses.replace(cfg, clip_seconds=clip_seconds or cfg.clip_seconds)

    def lazy_load_data(
        self, file: str | Path, extra_info: dict[str, Any] | None = None, fs: Any = None
    ) -> Iterator[Document]:
        """Documents of one audio file, stretch by stretch (none when it holds no speech).

        Raises:
            MMRAGError: corrupt, zero-length, no audio stream or an unsupported codec (the message
                names the file), or the speech model does not load.
        """
        from mmrag.ingest.audio import iter_audio_chunks
        from mmrag.types import NothingToIndex

        path = _local_path(file, fs)
        file_id = _file_id(path)
        try:
            for chunk in iter_audio_chunks(path, self.config, digest=file_id):
                yield _document(chunk, file_id, extra_info, "JPEG")
        except NothingToIndex:
            return
        except MMRAGError as e:
            raise MMRAGError(f"{path}: {e}") from e


class PDFPageImageReader(BaseReader):
    """A PDF as one `ImageDocument` per page: the rendered page and its text.

    Metadata: `path`, `file_path`, `file_name`, `modality="page"`, `page` (zero-based),
    `page_label` (one-based), `locator` (`p.3`), `point_id`, `pages` and the PDF's `title`.

    Args:
        page_px: Longest side of the rendered page (768 keeps body text legible to a VLM).
        ocr: Read pages without a text layer (scans) with OCR (needs rapidocr: `mmrag[ocr]`).
        config: Other ingest settings (`max_pdf_pages`); default `IngestConfig()`.
    """

    def __init__(self, page_px: int = 768, ocr: bool = False, config: IngestConfig | None = None) -> None:
        import dataclasses

        from mmrag.config import IngestConfig

        self.config = dataclasses.replace(config or IngestConfig(), page_image_px=page_px)
        self.ocr = ocr
        self._ocr: Any = None

    def lazy_load_data(
        self, file: str | Path, extra_info: dict[str, Any] | None = None, fs: Any = None
    ) -> Iterator[Document]:
        """Documents of one PDF, page by page.

        Raises:
            MMRAGError: not a PDF, corrupt, encrypted or over `max_pdf_pages` (the message names the file).
        """
        from mmrag.ingest.pdf import iter_pdf_chunks

        path = _local_path(file, fs)
        file_id = _file_id(path)
        if self.ocr and self._ocr is None:
            from mmrag.encoders.ocr import Ocr

            self._ocr = Ocr()
        try:
            for chunk in iter_pdf_chunks(path, self.config, self._ocr):
                if chunk.modality == "page":  # the page's text windows are the index's business
                    yield _document(chunk, file_id, extra_info, "PNG")
        except MMRAGError as e:
            raise MMRAGError(f"{path}: {e}") from e
