"""The stages of `mmrag index --ray` that run on Ray workers: read tasks and encoder actors.

Every row of the dataset is `{"key", "kind", "blob"}`: the file it belongs to, what it is, and its
content pickled. Rows into the read tasks carry a file's key and listing, never its bytes; a read
task copies an object to local scratch when it lies in a bucket, hashes it, and emits its chunks.

    kind     blob                          made by         meaning
    chunk    (Chunk, digest)               read task       one chunk of the file
    points   Encoded                       encoder actor   points of consecutive chunks of the file
    done     FileDone                      read task       all chunks emitted: `chunks` of them
    same     FileDone                      read task       content unchanged since it was recorded
    ignored  reason                        read task       nothing to index in it
    error    reason                        either          the file failed; drop what it wrote

Encoder actors pass every row that is not a chunk through unchanged. A file's points, `done` and
errors may reach the driver in any order: it counts (`mmrag.index.ray_job`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import pickle
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.index.record import Version, failure_reason, file_version, read_chunks
from mmrag.index.sources import Source, fetch
from mmrag.types import IngestError, NothingToIndex

if TYPE_CHECKING:
    from mmrag.config import EncoderConfig, MMRAGConfig
    from mmrag.types import Chunk, PointData


@dataclass
class FileDone:
    """What a read task learned of a file: the record the driver writes once its points are in
    (`stamp` is the driver's listing of it, taken before the read)."""

    digest: str
    version: Version
    stamp: str | None
    chunks: int
    read_seconds: float
    bytes_read: int


@dataclass
class Encoded:
    """Points of some chunks of one file, and the encoder's seconds spent on them."""

    points: list[PointData]
    seconds: float


def row(key: str, kind: str, value: Any) -> dict[str, Any]:
    return {"key": key, "kind": kind, "blob": pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)}


def unpack(blob: Any) -> Any:
    return pickle.loads(bytes(blob))


# One OCR engine and captioner per worker process (Ray reuses processes across read tasks), by config.
_READERS: dict[str, tuple[Any, Any]] = {}


def _readers(cfg: MMRAGConfig) -> tuple[Any, Any]:
    from mmrag.index.indexer import index_readers

    key = repr((cfg.encoders.ocr, cfg.ingest.video_ocr, cfg.ingest.caption, cfg.generate))
    if key not in _READERS:
        _READERS[key] = index_readers(cfg)
    return _READERS[key]


def read_file(item: dict[str, Any], cfg: MMRAGConfig) -> Iterator[dict[str, Any]]:
    """A read task's rows for one file (`item`: `source` pickled, `known` hash or "").

    A bad file becomes one `error` row with its reason; nothing it raises fails the dataset.
    """
    source: Source = unpack(item["source"])
    key = source.key
    t0 = time.perf_counter()
    try:
        with _local_copy(source) as (path, version, copied):
            yield from _read_local(source, path, version, copied, item["known"], cfg, t0)
    except NothingToIndex as e:
        yield row(key, "ignored", str(e))
    except Exception as e:  # a broken file trips any parser: report it, go on with the others
        yield row(key, "error", failure_reason(e))


def _read_local(
    source: Source,
    path: Path,
    version: Version,
    copied: int,
    known: str,
    cfg: MMRAGConfig,
    t0: float,
) -> Iterator[dict[str, Any]]:
    from mmrag.ingest import file_hash

    key = source.key
    digest = file_hash(path)
    if digest == known:
        yield row(key, "same", FileDone(digest, version, source.stamp, 0, time.perf_counter() - t0, copied))
        return
    ocr, caption_fn = _readers(cfg)
    n = 0
    for chunk in read_chunks(path, cfg.ingest, ocr, caption_fn):
        if source.remote:  # payloads name the object, not the scratch copy
            chunk = dataclasses.replace(chunk, path=key)
        yield row(key, "chunk", (chunk, digest))
        n += 1
    if not source.remote and file_version(path) != version:
        raise IngestError("file changed while it was being indexed; index it again once it is complete")
    if not n:
        raise IngestError("no content found (nothing to index)")
    yield row(key, "done", FileDone(digest, version, source.stamp, n, time.perf_counter() - t0, copied))


@contextlib.contextmanager
def _local_copy(source: Source) -> Iterator[tuple[Path, Version, int]]:
    """The file to read, with its version from before the hash and the bytes copied: a local file
    as it is, an object copied to scratch (`fetch`) for as long as it is read."""
    if not source.remote:
        path = Path(source.key)
        version = file_version(path)  # taken before the hash: a write after it shows
        yield path, version, version[0]
        return
    with fetch(source) as (path, copied):
        yield path, (path.stat().st_size, None, None, None), copied


class ChunkEncoder:
    """An encoder actor: the encoders loaded once; each batch of chunk rows, from any files, encoded
    in one pass (`encode_chunks`) and turned into points per file (`embed_chunks`).

    Args:
        encoders: The index's encoder settings (the device follows the GPUs Ray gave the actor).
        batch_size: Images or texts per forward pass.
    """

    def __init__(self, encoders: EncoderConfig, batch_size: int) -> None:
        from mmrag.encoders.embedders import Embedders

        self.emb = Embedders(encoders)
        self.batch_size = batch_size
        for model in ("image", "text", "page"):  # loaded now: batches time encoding, not loading
            getattr(self.emb, model)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        from mmrag.encoders.embedders import embed_chunks

        out: dict[str, list[Any]] = {"key": [], "kind": [], "blob": []}
        files: dict[str, tuple[str, list[Chunk]]] = {}  # key -> (digest, chunks), in batch order
        for key, kind, blob in zip(batch["key"], batch["kind"], batch["blob"], strict=True):
            if kind == "chunk":
                chunk, digest = unpack(blob)
                files.setdefault(str(key), (digest, []))[1].append(chunk)
            else:
                for col, v in (("key", key), ("kind", kind), ("blob", blob)):
                    out[col].append(v)
        total = sum(len(c) for _, c in files.values())
        t0 = time.perf_counter()
        vectors = self._encode_all([c for _, cs in files.values() for c in cs])
        pos = 0
        for key, (digest, chunks) in files.items():
            try:
                vec = vectors.slice(pos, pos + len(chunks)) if vectors is not None else None
                points = embed_chunks(chunks, digest, self.emb, batch_size=self.batch_size, vectors=vec)
            except Exception as e:  # this file breaks the encoders: it fails, the others go on
                new = row(key, "error", failure_reason(e))
            else:
                seconds = (time.perf_counter() - t0) * len(chunks) / max(1, total)
                new = row(key, "points", Encoded(points, seconds))
            pos += len(chunks)
            for col in out:
                out[col].append(new[col])
        return out

    def _encode_all(self, chunks: list[Chunk]) -> Any:
        """The batch's vectors in one pass, or None when one file breaks it (then file by file)."""
        from mmrag.encoders.embedders import encode_chunks

        if not chunks:
            return None
        try:
            return encode_chunks(chunks, self.emb, self.batch_size)
        except Exception:
            return None


def stage_rows(sources: list[tuple[Source, str]]) -> list[dict[str, Any]]:
    """The dataset's input rows: each source pickled, with the content hash recorded for it ("")."""
    return [{"key": s.key, "source": pickle.dumps(s), "known": known} for s, known in sources]
