"""Turn chunks into points: one batched pass of each encoder over a group of chunks.

The encoders load lazily, the first time a chunk needs them: a search with a text query never
loads the image tower of a profile whose image space has no text side.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.device import resolve_device, resolve_dtype
from mmrag.encoders.base import PixelEncoder, Pixels, concat_pixels, l2_normalize, pixel_rows
from mmrag.store.base import BM25, StoreSchema
from mmrag.store.multivector import mean_vector
from mmrag.types import Chunk, MMRAGError, PointData, SparseVec, point_id

if TYPE_CHECKING:
    from mmrag.config import EncoderConfig
    from mmrag.encoders.base import ImageEncoder, TextEncoder
    from mmrag.encoders.bm25 import Bm25Encoder
    from mmrag.encoders.colpali import PageEncoder

# Text kept in the payload (the snippet shown with a hit); the vectors see the whole chunk text.
PAYLOAD_TEXT_CHARS = 4000
# Loaded encoders are shared by every pipeline of the process (inference only, no state):
# reopening an index, or a server holding several, loads each model once.
_LOADED: dict[tuple[str, str, str, str, int], Any] = {}
RECENT_TEXTS = 256
# Query and passage vectors remembered by `Embedders.text_vectors` (a few MB at 384-512 dims).
VECTOR_CACHE = 4096
_RESERVED = {
    "embed_text",
    "context",
    "modality",
    "path",
    "file_hash",
    "locator",
    "page",
    "t_start",
    "t_end",
    "text",
    "tags",
}


class Embedders:
    """The encoders of a config, loaded on first use."""

    def __init__(self, cfg: EncoderConfig) -> None:
        self.cfg = cfg
        self._image: ImageEncoder | None = None
        self._text: TextEncoder | None = None
        self._query_text: TextEncoder | None = None
        self._bm25: Bm25Encoder | None = None
        self._page: PageEncoder | None = None
        self.recent: dict[str, np.ndarray] = {}  # last embedded texts, oldest first
        self._vectors: OrderedDict[tuple[str, str, str], np.ndarray] = OrderedDict()

    @property
    def image(self) -> ImageEncoder | None:
        if self._image is None and self.cfg.image:
            from mmrag.encoders import load_image_encoder

            key = ("image", self.cfg.image, self.cfg.device, self.cfg.dtype, self.cfg.tags)
            if key not in _LOADED:
                _LOADED[key] = load_image_encoder(
                    self.cfg.image, device=self.cfg.device, dtype=self.cfg.dtype, n_tags=self.cfg.tags
                )
            self._image = _LOADED[key]
        return self._image

    @property
    def text(self) -> TextEncoder | None:
        """The text embedder for documents: torch, or the ONNX form with `text_runtime="onnx"`."""
        if self._text is None and self.cfg.text:
            onnx = self._onnx_text() if self._onnx_wanted(documents=True) else None
            self._text = onnx or self._torch_text()
        return self._text

    @property
    def query_text(self) -> TextEncoder | None:
        """The text embedder for queries: the ONNX form where the model has one and `text_runtime`
        allows it (no torch import), else `text`. Both give the same vectors (`mmrag.encoders.onnx_text`)."""
        if self._query_text is None and self.cfg.text:
            onnx = self._onnx_text() if self._onnx_wanted(documents=False) else None
            self._query_text = onnx or self.text
        return self._query_text

    def _onnx_wanted(self, documents: bool) -> bool:
        runtime = getattr(self.cfg, "text_runtime", "auto")  # configs that predate the field: auto
        if runtime == "torch" or (runtime == "auto" and documents):
            return False
        # `auto` counts as the CPU for queries: one query costs milliseconds on either, and telling
        # whether there is a GPU means importing torch, which is what the ONNX form avoids.
        return self.cfg.device in ("auto", "cpu")

    def _torch_text(self) -> TextEncoder:
        from mmrag.encoders import load_text_encoder

        assert self.cfg.text
        dtype = self.cfg.dtype
        if self.cfg.cpu_bf16 and resolve_device(self.cfg.device) == "cpu":
            dtype = resolve_dtype(dtype, "cpu", cpu_bf16=True)  # `auto`: bf16 where the CPU has it
        key = ("text", self.cfg.text, self.cfg.device, dtype, 0)
        if key not in _LOADED:
            _LOADED[key] = load_text_encoder(self.cfg.text, device=self.cfg.device, dtype=dtype)
        enc: TextEncoder = _LOADED[key]
        return enc

    def _onnx_text(self) -> TextEncoder | None:
        """The ONNX form of the text embedder (exported first if it has one and none is cached)."""
        from mmrag.encoders.onnx_text import onnx_form

        assert self.cfg.text
        key = ("onnx-text", self.cfg.text, "cpu", "float32", 0)
        if key not in _LOADED:
            _LOADED[key] = onnx_form(self.cfg.text, self._torch_text)  # None: keep the torch path
        found: TextEncoder | None = _LOADED[key]
        return found

    def prepare_query_runtime(self) -> bool:
        """Make the ONNX form of the text embedder if queries would use it (`onnx_text.ensure_export`:
        once per machine, with torch); `Pipeline.index` calls it so later searches never import torch."""
        from mmrag.encoders.onnx_text import ensure_export

        wanted = bool(self.cfg.text) and self._onnx_wanted(documents=False)
        return wanted and ensure_export(str(self.cfg.text), self._torch_text)

    @property
    def page(self) -> PageEncoder | None:
        """The late-interaction page encoder (`encoders.page`), or None when the space is off."""
        page_id = getattr(self.cfg, "page", None)  # configs that predate the field have none
        if self._page is None and page_id:
            from mmrag.encoders import load_page_encoder

            key = ("page", page_id, self.cfg.device, self.cfg.dtype, 0)
            if key not in _LOADED:
                _LOADED[key] = load_page_encoder(page_id, device=self.cfg.device, dtype=self.cfg.dtype)
            self._page = _LOADED[key]
        return self._page

    @property
    def bm25(self) -> Bm25Encoder:
        if self._bm25 is None:
            from mmrag.encoders.bm25 import Bm25Encoder

            self._bm25 = Bm25Encoder()
        return self._bm25

    def text_vectors(self, texts: Sequence[str], space: str = "text", kind: str = "text") -> list[np.ndarray]:
        """Texts through the text embedder (`space="text"`) or the image encoder's text side (`"image"`),
        as passages (`kind="text"`) or queries (`"query"`, with the model's query prefix if it has one).

        Remembered (LRU, `VECTOR_CACHE` entries): a query searched in several configurations, or the
        same passages reranked for many queries, are embedded once.
        """
        enc: Any
        if space == "text":
            enc = self.query_text if kind == "query" else self.text
        else:
            enc = self.image
        if enc is None:
            raise MMRAGError(f"no encoder reads text into the {space!r} space")
        keys = [(space, kind, t) for t in texts]
        todo = sorted({k for k in keys if k not in self._vectors})
        if todo:
            fn = getattr(enc, "encode_queries", enc.encode_text) if kind == "query" else enc.encode_text
            for k, v in zip(todo, fn([k[2] for k in todo]), strict=True):
                self._vectors[k] = np.asarray(v)
        out = []
        for k in keys:
            self._vectors.move_to_end(k)
            out.append(self._vectors[k])
        while len(self._vectors) > VECTOR_CACHE:
            self._vectors.popitem(last=False)
        return out

    def describe(self) -> dict[str, Any]:
        """Encoder ids and dims as the manifest records them (loads the encoders to read dims)."""
        out: dict[str, Any] = {}
        for space, enc in (("image", self.image), ("text", self.text)):
            if enc is not None:
                out[space] = {
                    "id": enc.model_id,
                    "dim": enc.dim,
                    "aligned_text": bool(getattr(enc, "aligned_text", False)),
                }
        if self.page is not None:
            # stored as a multi-vector space `page` and its pooled single vector `page_mean`
            pool = int(getattr(self.cfg, "page_pool", 1))
            out["page"] = {"id": self.page.model_id, "dim": self.page.dim, "multi": True, "pool": pool}
        return out

    def schema(self, hnsw_m: int = 16, ef_construct: int = 100, on_disk: bool = False) -> StoreSchema:
        described = self.describe()
        dims = {space: d["dim"] for space, d in described.items() if not d.get("multi")}
        multi = {space: d["dim"] for space, d in described.items() if d.get("multi")}
        dims.update({f"{space}_mean": dim for space, dim in multi.items()})
        return StoreSchema(dims, hnsw_m, ef_construct, on_disk, multi)


def chunk_text(chunk: Chunk, tags: list[str] | None) -> str:
    """What the text and BM25 vectors read: the chunk's own text, then the image tags.

    Rendered pages get no tags: ImageNet labels of a page of print ("menu", "web site") are noise.
    """
    parts = [chunk.text.strip()] if chunk.text and chunk.text.strip() else []
    if tags and chunk.modality != "page":
        parts.append("tags: " + ", ".join(tags))
    return "\n".join(parts)


def _encode_texts(emb: Embedders, texts: list[str], batch_size: int) -> list[np.ndarray]:
    """Embed texts, each distinct string once (a page's first window is also its chunk 0).

    The batch's vectors come from this call's own table; the shared `recent` cache only saves
    re-embedding a text seen in an earlier batch, and what it evicts never affects this one.
    """
    assert emb.text is not None
    cache = emb.recent
    found = {t: cache[t] for t in dict.fromkeys(texts) if t in cache}
    todo = [t for t in dict.fromkeys(texts) if t not in found]
    if todo:
        vecs = emb.text.encode_text(todo, batch_size=batch_size)
        for t, v in zip(todo, vecs, strict=True):
            found[t] = v
            cache[t] = v
        while len(cache) > RECENT_TEXTS:
            cache.pop(next(iter(cache)))
    return [found[t] for t in texts]


@dataclass
class ChunkVectors:
    """What the encoders made of a list of chunks, one entry per chunk (None where it has none)."""

    image: list[np.ndarray | None]
    tags: list[list[str] | None]
    text: list[np.ndarray | None]
    sparse: list[SparseVec | None]
    page: list[np.ndarray | None] | None = None
    """Page chunks' multi-vectors (pooled when `encoders.page_pool` > 1); None: no page encoder."""

    def slice(self, start: int, stop: int) -> ChunkVectors:
        """The entries of chunks `start:stop`."""
        return ChunkVectors(
            self.image[start:stop],
            self.tags[start:stop],
            self.text[start:stop],
            self.sparse[start:stop],
            self.page[start:stop] if self.page is not None else None,
        )


def _image_vectors(
    chunks: Sequence[Chunk],
    emb: Embedders,
    batch_size: int,
    pixels: Sequence[Pixels | None] | None,
) -> tuple[list[np.ndarray | None], list[list[str] | None]]:
    """One image pass over every frame of the chunks: a vector per chunk with images, and its tags.

    `pixels[i]` is chunk i's frames already preprocessed (`PixelEncoder.preprocess`); chunks without
    it are preprocessed here from their images.
    """
    n = len(chunks)
    image_vecs: list[np.ndarray | None] = [None] * n
    tags: list[list[str] | None] = [None] * n
    given: list[Pixels | None] = list(pixels) if pixels is not None else [None] * n
    counts = [pixel_rows(p) if p is not None else len(c.images) for p, c in zip(given, chunks, strict=True)]
    with_images = [i for i in range(n) if counts[i]]
    enc = emb.image if with_images else None
    if enc is None:
        return image_vecs, tags
    if isinstance(enc, PixelEncoder):
        parts = [given[i] or enc.preprocess(chunks[i].images) for i in with_images]
        feats = enc.encode_pixels(concat_pixels(parts), batch_size=batch_size)
    else:
        feats = enc.encode_images([im for i in with_images for im in chunks[i].images], batch_size=batch_size)
    pos = 0
    for i in with_images:
        k = counts[i]
        # A clip's vector is the mean of its frame vectors, renormalised.
        image_vecs[i] = l2_normalize(feats.vectors[pos : pos + k].mean(axis=0, keepdims=True))[0]
        if feats.tags is not None:
            seen: dict[str, None] = {}
            for frame_tags in feats.tags[pos : pos + k]:
                seen.update(dict.fromkeys(frame_tags))
            tags[i] = list(seen)[: max(3, k)]
        pos += k
    return image_vecs, tags


def _dense_text(chunk: Chunk, context: str, text: str) -> str:
    """What the dense text vector reads: `embed_text` when the chunk has one (context first), else `text`."""
    embed = chunk.meta.get("embed_text")
    if not embed:
        return text
    return f"{context}\n{embed}" if context else str(embed)


def encode_chunks(
    chunks: Sequence[Chunk],
    emb: Embedders,
    batch_size: int = 32,
    pixels: Sequence[Pixels | None] | None = None,
) -> ChunkVectors:
    """Run the encoders over chunks of any number of files: one image pass, one text pass, BM25.

    Args:
        chunks: The chunks, in any order.
        emb: The encoders.
        batch_size: Images or texts per forward pass.
        pixels: Per chunk, its frames already preprocessed by the image encoder (so a worker
            thread can do that part), or None to preprocess `chunk.images` here.
    """
    image_vecs, tags = _image_vectors(chunks, emb, batch_size, pixels)
    texts = [chunk_text(c, t) for c, t in zip(chunks, tags, strict=True)]
    with_text = [i for i, t in enumerate(texts) if t]
    # contextual chunks: the document's title, entity, period and section lead what the vectors read
    ctx = [str(c.meta.get("context") or "") for c in chunks]
    texts = [f"{ctx[i]}\n{t}" if ctx[i] and t else t for i, t in enumerate(texts)]
    text_vecs: list[np.ndarray | None] = [None] * len(chunks)
    sparse: list[SparseVec | None] = [None] * len(chunks)
    if with_text:
        if emb.text is not None:
            dense_in = [_dense_text(chunks[i], ctx[i], texts[i]) for i in with_text]
            for i, v in zip(with_text, _encode_texts(emb, dense_in, batch_size), strict=True):
                text_vecs[i] = v
        for i, sp in zip(with_text, emb.bm25.embed_documents([texts[i] for i in with_text]), strict=True):
            sparse[i] = sp
    return ChunkVectors(image_vecs, tags, text_vecs, sparse, _page_vectors(chunks, emb))


def _page_vectors(chunks: Sequence[Chunk], emb: Embedders) -> list[np.ndarray | None] | None:
    """Multi-vectors of the rendered pages among `chunks` (patch-pooled when configured)."""
    if emb.page is None:
        return None
    from mmrag.store.multivector import hierarchical_pool

    out: list[np.ndarray | None] = [None] * len(chunks)
    todo = [i for i, c in enumerate(chunks) if c.modality == "page" and c.images]
    pool = int(getattr(emb.cfg, "page_pool", 1))
    for i, pv in zip(todo, emb.page.encode_pages([chunks[i].images[0] for i in todo]), strict=True):
        out[i] = hierarchical_pool(pv.vectors, pool, pool=pv.patches) if pool > 1 else pv.vectors
    return out


def embed_chunks(
    chunks: Sequence[Chunk],
    file_hash: str,
    emb: Embedders,
    batch_size: int = 32,
    vectors: ChunkVectors | None = None,
) -> list[PointData]:
    """Embed a group of chunks (all from one file) into points with deterministic ids.

    `vectors` are the chunks' vectors when they were already computed (`encode_chunks` over a batch
    that spans several files); without them the encoders run here.
    """
    v = vectors if vectors is not None else encode_chunks(chunks, emb, batch_size)
    points = []
    for i, c in enumerate(chunks):
        dense: dict[str, np.ndarray] = {}
        image_vec, text_vec, sp = v.image[i], v.text[i], v.sparse[i]
        if image_vec is not None:
            dense["image"] = image_vec
        if text_vec is not None:
            dense["text"] = text_vec
        multi = v.page[i] if v.page is not None else None
        if multi is not None:
            dense["page"], dense["page_mean"] = multi, mean_vector(multi)
        payload = {k: val for k, val in c.meta.items() if k not in _RESERVED}
        payload.update(
            modality=c.modality,
            path=c.path,
            file_hash=file_hash,
            locator=c.locator,
            page=c.page,
            t_start=c.t_start,
            t_end=c.t_end,
            text=(c.text or "")[:PAYLOAD_TEXT_CHARS] or None,
            tags=v.tags[i],
        )
        points.append(
            PointData(point_id(file_hash, c.locator), dense, sp if sp and sp.indices else None, payload)
        )
    return points


__all__ = ["BM25", "ChunkVectors", "Embedders", "chunk_text", "embed_chunks", "encode_chunks"]
