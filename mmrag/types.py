"""Small typed records that cross module boundaries: what ingest yields, what search returns."""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

Modality = Literal["image", "page", "video", "text", "audio"]
MODALITIES: tuple[Modality, ...] = ("image", "page", "video", "text", "audio")


@dataclass
class Chunk:
    """One unit that becomes one point in the store.

    Readers in `mmrag.ingest` yield chunks; the indexer embeds them and writes points.

    Attributes:
        modality: `image` (a photo), `page` (a rendered PDF page), `video` (a clip), `text` (a text chunk),
            `audio` (a stretch of speech in an audio file, with its transcript).
        path: Source file, as given to the indexer (resolved to an absolute path).
        locator: Position inside the file (`""`, `page=3`, `page=3;chunk=1`, `t=10.000-20.000`, `line=7`);
            with the file's content hash it makes the point id.
        text: Text for the `text` and `bm25` vectors (page text, subtitles, caption, tags, OCR).
        images: Pixels for the `image` vector; several frames are averaged (video clips).
        page: Zero-based page number for PDF chunks.
        t_start: Clip start in seconds for video and audio chunks.
        t_end: Clip end in seconds for video and audio chunks.
        meta: Extra payload (title, source, published_at, ...), kept as is.
    """

    modality: Modality
    path: str
    locator: str = ""
    text: str | None = None
    images: list[Image.Image] = field(default_factory=list)
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    """One search result.

    Attributes:
        id: Point id (a UUID5 string, stable across re-indexing of identical content).
        score: Fused score (higher is better); comparable only within one result list.
        modality: `image`, `page`, `video`, `text` or `audio`.
        path: Source file.
        page: Zero-based page for PDF hits.
        t_start: Clip start (seconds) for video and audio hits.
        t_end: Clip end (seconds) for video and audio hits.
        text: Stored text of the point (snippet, subtitles, tags).
        payload: The whole stored payload.
    """

    id: str
    score: float
    modality: str
    path: str
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None
    text: str | None = None
    payload: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def locator(self) -> str:
        """Where in its file: `p.4` (one-based page), `00:12:31–00:12:41` (clip), or ``."""
        if self.page is not None:
            return f"p.{self.page + 1}"
        if self.t_start is not None:
            return format_span(self.t_start, self.t_end)
        return ""


def hms(t: float) -> str:
    """`HH:MM:SS` for seconds (whole seconds, rounded down; hours past 99 keep their digits)."""
    s = max(0, int(t))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def format_span(t_start: float, t_end: float | None = None) -> str:
    """`HH:MM:SS–HH:MM:SS` (an en dash between), the form answers and hit locators use to name clips."""
    return f"{hms(t_start)}–{hms(t_start if t_end is None else t_end)}"


@dataclass(frozen=True)
class FileError:
    """A file that could not be indexed, and why."""

    path: str
    reason: str


@dataclass
class IndexReport:
    """What one `Pipeline.index` call did."""

    files_seen: int = 0
    files_indexed: int = 0
    files_skipped: int = 0
    points_written: int = 0
    errors: list[FileError] = field(default_factory=list)
    ignored: list[FileError] = field(default_factory=list)
    """Files with nothing to index (e.g. a JSON file without text records), with the reason."""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Namespace for deterministic point ids: uuid5(NAMESPACE, f"{content_hash}:{locator}").
POINT_NAMESPACE = uuid.UUID("6f1c1f7e-6a3c-4e0b-9d1e-3b8f1a2c9d10")


def point_id(content_hash: str, locator: str) -> str:
    """Deterministic point id: the same content at the same locator always maps to the same id."""
    return str(uuid.uuid5(POINT_NAMESPACE, f"{content_hash}:{locator}"))


@dataclass
class SparseVec:
    """A sparse vector (BM25 term weights): parallel lists of term indices and their values."""

    indices: list[int]
    values: list[float]


@dataclass
class PointData:
    """A point to upsert. `dense` maps a space name (`image`, `text`) to an L2-normalised vector, and a
    multi-vector space (`page`, `StoreSchema.multi`) to a (tokens, dim) matrix.

    Encoders build points (`mmrag.encoders.embedders`) and stores write them (`mmrag.store`).
    """

    id: str
    dense: dict[str, np.ndarray] = field(default_factory=dict)
    sparse: SparseVec | None = None
    payload: dict[str, Any] = field(default_factory=dict)


class MMRAGError(Exception):
    """Base class for errors with a message meant for the user."""


class IngestError(MMRAGError):
    """A file cannot be read; the message names the reason (the caller adds the path)."""


class NothingToIndex(IngestError):
    """A readable file that holds nothing to index (a JSON file of labels, not a text corpus).

    Reported as ignored, not as a failure: it is not bad input.
    """


class IndexMismatchError(MMRAGError):
    """The index folder was built with other encoders or another schema than the ones asked for."""


class IndexLockedError(MMRAGError):
    """Another process holds the index."""
