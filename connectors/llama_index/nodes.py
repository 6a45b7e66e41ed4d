"""Hits to llama-index nodes and back, with mmrag's provenance in the node metadata.

A `text` hit (a text chunk, a page's text window) becomes a `TextNode`. An `image`, `page` or
`video` hit becomes an `ImageNode` carrying the picture behind it: the photo (by path, or inline),
the rendered PDF page or the clip's first keyframe (inline base64, rendered by
`mmrag.answer.ask.hit_image`). The node id is the point id, so a node names the same point in every
run and in the store.

llama-index's own `ImageNode.get_content_blocks` gives only metadata and the image: a page's
text would never reach a multimodal synthesizer. `MMRAGImageNode` adds the text block back; it
serialises as a plain `ImageNode`, so stores and docstores without mmrag can still read it.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.base.llms.types import BaseContentBlock, TextBlock
from llama_index.core.schema import (
    BaseNode,
    ImageNode,
    ImageType,
    MetadataMode,
    NodeWithScore,
    TextNode,
)

from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

ImageMode = Literal["auto", "base64", "none"]
IMAGE_MODALITIES = ("image", "page", "video")
# What the LLM reads next to a node's content: enough to cite it ("report.pdf p.3").
LLM_KEYS = ("file_name", "locator", "modality", "title")
# Payload fields that are mmrag internals or repeated elsewhere in the metadata.
_INTERNAL = {"embed_text", "file_hash", "text", "tags", "locator", "path", "page", "t_start", "t_end"}


class MMRAGImageNode(ImageNode):
    """An `ImageNode` whose content blocks hold its text as well as its image."""

    def get_content_blocks(self, metadata_mode: MetadataMode = MetadataMode.NONE) -> list[BaseContentBlock]:
        blocks = super().get_content_blocks(metadata_mode)
        if self.text:
            blocks.append(TextBlock(text=self.text))
        return blocks

    @classmethod
    def class_name(cls) -> str:
        return "ImageNode"


def encode_image(img: Image.Image, fmt: str = "JPEG", max_side: int | None = None) -> str:
    """Base64 of an image as JPEG (photos, frames) or PNG (crisp text of rendered pages)."""
    if max_side is not None and max(img.size) > max_side:
        img = img.copy()
        img.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    img.convert("RGB").save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return base64.b64encode(buf.getvalue()).decode("ascii")


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """Provenance of a hit as flat metadata (None values left out)."""
    extras = {k: v for k, v in hit.payload.items() if k not in _INTERNAL and _flat(v)}
    meta: dict[str, Any] = {
        **extras,
        "path": hit.path,
        "file_name": Path(hit.path).name,
        "modality": hit.modality,
        "page": hit.page,
        "page_label": hit.page + 1 if hit.page is not None else None,
        "t_start": hit.t_start,
        "t_end": hit.t_end,
        "locator": hit.locator(),
        "point_id": hit.id,
        "score": hit.score,
    }
    return {k: v for k, v in meta.items() if v is not None and v != ""}


def _flat(value: Any) -> bool:
    # vector stores keep flat metadata only (str, int, float, None)
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def hit_text(hit: Hit) -> str:
    """The text a node shows: the stored text, else the image's tags (as the answer prompt does)."""
    if hit.text:
        return hit.text
    tags = hit.payload.get("tags") or []
    return "tags: " + ", ".join(tags) if tags else ""


def hit_to_node(hit: Hit, images: ImageMode = "auto", image_px: int = 768) -> NodeWithScore:
    """One hit as a scored node: `TextNode` for text, `MMRAGImageNode` for image-like hits.

    Args:
        hit: A search hit.
        images: `auto`: photos by path, rendered pages and keyframes inline as base64;
            `base64`: every picture inline (photos loaded upright and shrunk to `image_px`);
            `none`: text nodes only.
        image_px: Longest side of inline pictures.

    Returns:
        The node (id = point id) with the hit's fused score. An image-like hit whose file can no
        longer be read becomes a `TextNode`.
    """
    meta = hit_metadata(hit)
    keys = list(meta)
    common: dict[str, Any] = {
        "id_": hit.id,
        "text": hit_text(hit),
        "metadata": meta,
        "excluded_llm_metadata_keys": [k for k in keys if k not in LLM_KEYS],
        "excluded_embed_metadata_keys": [k for k in keys if k not in ("file_name", "title")],
    }
    node: BaseNode | None = None
    if images != "none" and hit.modality in IMAGE_MODALITIES:
        if hit.modality == "image" and images == "auto" and Path(hit.path).is_file():
            node = MMRAGImageNode(image_path=hit.path, **common)
        else:
            from mmrag.ingest.render import hit_image

            img = hit_image(hit)
            if img is not None:
                fmt = "PNG" if hit.modality == "page" else "JPEG"
                node = MMRAGImageNode(
                    image=encode_image(img, fmt, image_px), image_mimetype=f"image/{fmt.lower()}", **common
                )
    return NodeWithScore(node=node or TextNode(**common), score=hit.score)


def node_to_hit(nws: NodeWithScore) -> Hit:
    """A scored node back into a `Hit`: exact for nodes from `MMRAGRetriever`, best effort otherwise.

    Nodes from elsewhere (a llama-index vector store) keep their node id, read `file_path` as the
    path, and count as `text` hits unless their metadata names a modality.
    """
    node = nws.node
    meta = dict(node.metadata)
    modality = meta.get("modality") or ("image" if isinstance(node, ImageNode) else "text")
    return Hit(
        id=str(meta.get("point_id") or node.node_id),
        score=float(nws.score if nws.score is not None else meta.get("score", 0.0)),
        modality=str(modality),
        path=str(meta.get("path") or meta.get("file_path") or getattr(node, "image_path", None) or ""),
        page=_opt(meta.get("page"), int),
        t_start=_opt(meta.get("t_start"), float),
        t_end=_opt(meta.get("t_end"), float),
        text=node.get_content(metadata_mode=MetadataMode.NONE) or None,
        payload=meta,
    )


def _opt(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def open_image(source: ImageType) -> Image.Image:
    """A path (read like mmrag reads images: upright, RGB, size-checked) or bytes (a `BytesIO`)."""
    if isinstance(source, str | Path):
        from mmrag.ingest.images import load_image

        try:
            return load_image(Path(source))
        except MMRAGError as e:
            raise MMRAGError(f"{source}: {e}") from e
    from PIL import Image, ImageOps, UnidentifiedImageError

    from mmrag.ingest.images import to_rgb

    try:
        img = Image.open(source)
        return to_rgb(ImageOps.exif_transpose(img))
    except (UnidentifiedImageError, OSError) as e:
        raise MMRAGError(f"cannot read the image: {e}") from e
