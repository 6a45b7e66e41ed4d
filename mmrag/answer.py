"""Retrieval-augmented answers: retrieve, pack the context within a budget, generate, cite.

The context is the top hits' text, each under a numbered label (`[1] report.pdf p.4`), in rank
order until `context_chars` is spent. A generator that reads images (a VLM, or a bridge) also gets
the top image-like hits as pictures: the photo, the rendered PDF page, or a keyframe of the clip,
not only their text. The prompt (`prompts/ask.txt`) asks for citations by label and for
"Insufficient information" when the sources do not hold the answer.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import GenerateConfig

INSUFFICIENT = "Insufficient information"


@dataclass
class Source:
    """A retrieved hit as the answer cites it."""

    label: int
    hit: Hit
    used_image: bool = False

    def locator(self) -> str:
        return self.hit.locator()

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.hit.to_dict().items() if k != "payload"}
        return {"label": self.label, "locator": self.locator(), "used_image": self.used_image, **d}


@dataclass
class Answer:
    """An answer with the sources it was given, the labels it cites, and where the time went."""

    question: str
    text: str
    sources: list[Source] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    model: str = ""

    @property
    def cited(self) -> list[int]:
        """Labels the answer cites (`[2]`, `[1, 3]`), in order of first mention."""
        found = [
            int(n) for group in re.findall(r"\[(\d+(?:\s*,\s*\d+)*)\]", self.text) for n in group.split(",")
        ]
        valid = {s.label for s in self.sources}
        return list(dict.fromkeys(n for n in found if n in valid))

    @property
    def insufficient(self) -> bool:
        return INSUFFICIENT.lower() in self.text.lower()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; `contexts` and `answer` follow the field names ragas and deepeval read."""
        return {
            "question": self.question,
            "answer": self.text,
            "contexts": [s.hit.text or "" for s in self.sources],
            "cited": self.cited,
            "insufficient": self.insufficient,
            "sources": [s.to_dict() for s in self.sources],
            "timings": self.timings,
            "model": self.model,
        }


class Generator:
    """One interface over the three backends: text LLM, HF VLM, projector bridge."""

    def __init__(self, backend: Any, reads_images: bool, model_id: str, dtype: str = "auto") -> None:
        self.backend = backend
        self.reads_images = reads_images
        self.model_id = model_id
        self.dtype = dtype

    def generate(
        self, prompt: str, images: Sequence[Image.Image] = (), max_new_tokens: int = 256, stream: bool = False
    ) -> str | Iterator[str]:
        if images and not self.reads_images:
            raise MMRAGError(f"{self.model_id} reads no images; use a VLM or a bridge as the generator")
        if self.reads_images:
            out: str | Iterator[str] = self.backend.generate(
                prompt, images, max_new_tokens=max_new_tokens, stream=stream
            )
        else:
            out = self.backend.generate(prompt, max_new_tokens=max_new_tokens, stream=stream)
        return out


_GENERATORS: dict[tuple[str, str, bool | None], Generator] = {}


def _dtype(cfg: GenerateConfig) -> str:
    # `generate.dtype` (auto, float32, float16, bfloat16): the 16-bit weights, or the 4-bit compute
    # dtype. Read with a default so configs that predate the field keep `auto`.
    return str(getattr(cfg, "dtype", "auto"))


def load_generator(cfg: GenerateConfig) -> Generator:
    """A bridge folder (has `bridge.json`), a VLM (its config has a `vision_config`), or a causal LM.

    Loaded generators are kept for the process, like encoders (one per model, device and 4-bit
    setting; asking for another dtype replaces it).
    """
    key = (cfg.model, cfg.device, cfg.quantize)
    dtype = _dtype(cfg)
    if key in _GENERATORS and _GENERATORS[key].dtype == dtype:
        return _GENERATORS[key]
    _GENERATORS.pop(key, None)
    kw: dict[str, Any] = {"device": cfg.device, "dtype": dtype, "quantize": cfg.quantize}
    folder = Path(cfg.model).expanduser()
    if (folder / "bridge.json").is_file():
        from mmrag.generate.bridge import BridgeModel

        gen = Generator(BridgeModel.load(folder, **kw), True, cfg.model, dtype)
    elif _is_vlm(cfg.model):
        from mmrag.generate.vlm import VLMGenerator

        gen = Generator(VLMGenerator.load(cfg.model, **kw), True, cfg.model, dtype)
    else:
        from mmrag.generate.llm import TextGenerator

        gen = Generator(TextGenerator.load(cfg.model, **kw), False, cfg.model, dtype)
    from mmrag.generate.llm import warm_cpu_4bit

    warm_cpu_4bit(gen.backend.llm if hasattr(gen.backend, "llm") else gen.backend.model)
    _GENERATORS[key] = gen
    return gen


def memory_footprint(backend: Any) -> int:
    """Bytes held by a loaded backend's parameters and buffers (4-bit weights count as packed)."""
    if hasattr(backend, "projector"):  # a bridge: the LM's own footprint plus tower and projector
        rest = [backend.tower, backend.projector]
        return int(backend.llm.get_memory_footprint()) + sum(
            t.nelement() * t.element_size() for m in rest for t in [*m.parameters(), *m.buffers()]
        )
    return int(backend.model.get_memory_footprint())


def generator_info(cfg: GenerateConfig, load: bool = False) -> dict[str, Any]:
    """The configured generator: id, device, whether its LLM is 4-bit here, and its memory when known.

    `memory_bytes` is reported when the generator is already loaded in this process, or when
    `load` is set (which loads it); otherwise it is None.
    """
    import importlib.util

    from mmrag.generate.llm import resolve_device

    device = resolve_device(cfg.device)
    quant = cfg.quantize if cfg.quantize is not None else device.startswith("cuda")
    gen = _GENERATORS.get((cfg.model, cfg.device, cfg.quantize))
    if gen is not None and gen.dtype != _dtype(cfg):
        gen = None
    if gen is None and load:
        gen = load_generator(cfg)
    return {
        "model": cfg.model,
        "device": device,
        "quantize_4bit": bool(quant) and importlib.util.find_spec("bitsandbytes") is not None,
        "loaded": gen is not None,
        "memory_bytes": memory_footprint(gen.backend) if gen is not None else None,
    }


def _is_vlm(model_id: str) -> bool:
    from mmrag.generate.llm import PACKAGED_LLMS

    if model_id in PACKAGED_LLMS:
        return False
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(model_id)
    except (OSError, ValueError) as e:
        raise MMRAGError(f"{model_id}: cannot read the generator's config: {e}") from e
    return getattr(cfg, "vision_config", None) is not None


def pack_context(hits: Sequence[Hit], budget_chars: int) -> tuple[str, list[Source]]:
    """Numbered sources in rank order until the text budget is spent (the first is always kept)."""
    parts: list[str] = []
    sources: list[Source] = []
    used = 0
    for i, h in enumerate(hits, 1):
        src = Source(i, h)
        body = " ".join((h.text or ", ".join(h.payload.get("tags") or []) or "(no text)").split())
        head = f"[{i}] {Path(h.path).name} {src.locator()}".rstrip()
        room = budget_chars - used - len(head) - 2
        if sources and room < 80:
            break
        body = body[: max(room, 80)]
        parts.append(f"{head}\n{body}")
        used += len(head) + len(body) + 2
        sources.append(src)
    return "\n\n".join(parts), sources


def hit_image(hit: Hit) -> Image.Image | None:
    """The picture behind a hit: the photo, the rendered page, or the clip's first keyframe."""
    path = Path(hit.path)
    try:
        if hit.modality == "image":
            from mmrag.ingest.images import load_image

            return load_image(path)
        if hit.modality == "page" and hit.page is not None:
            import pypdfium2 as pdfium

            from mmrag.ingest.pdf import PDFIUM_LOCK

            with PDFIUM_LOCK:  # PDFium is not thread-safe: a server may be indexing at the same time
                pdf = pdfium.PdfDocument(str(path))
                try:
                    page = pdf[hit.page]
                    scale = 768 / max(page.get_width(), page.get_height())
                    return page.render(scale=scale).to_pil().convert("RGB")
                finally:
                    pdf.close()
        if hit.modality == "video" and hit.t_start is not None:
            return _frame_at(path, hit.t_start)
    except (OSError, ValueError, MMRAGError, ImportError):
        return None  # the file moved or broke since indexing: answer from its text alone
    return None


def _frame_at(path: Path, t: float) -> Image.Image | None:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        if stream.time_base is not None:
            container.seek(int(t / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is None or frame.time >= t - 1e-3:
                img: Image.Image = frame.to_image()
                return img
    return None


def answer(
    question: str,
    hits: Sequence[Hit],
    cfg: GenerateConfig,
    query_images: Sequence[Image.Image] = (),
    on_token: Callable[[str], None] | None = None,
    prompt_dir: str | Path | None = None,
    t_retrieve: float = 0.0,
    t_rerank: float = 0.0,
) -> Answer:
    """Generate an answer to `question` from retrieved `hits` (already ranked).

    `t_retrieve` is the retrieval stage's wall time, reranking included, and `t_rerank` the
    reranker's share of it. The answer's `timings` split the call into disjoint stages, in seconds:
    `retrieve` (embed, search, fuse: `t_retrieve - t_rerank`), `rerank`, `load` (the generator, on
    its first use in the process), `pack` (context, images, prompt) and `generate`.
    """
    from mmrag.prompts import render_prompt

    t0 = time.perf_counter()
    gen = load_generator(cfg)
    t_load = time.perf_counter() - t0
    t1 = time.perf_counter()
    context, sources = pack_context(hits, cfg.context_chars)
    images = list(query_images)
    if gen.reads_images:
        for s in sources:
            if len(images) >= cfg.max_images:
                break
            img = hit_image(s.hit) if s.hit.modality in ("image", "page", "video") else None
            if img is not None:
                images.append(img)
                s.used_image = True
    else:
        images = []
    prompt = render_prompt(
        "ask", question=question, context=context or "(no sources found)", prompt_dir=prompt_dir
    )
    t_pack = time.perf_counter() - t1
    t2 = time.perf_counter()
    if on_token is None:
        text = str(gen.generate(prompt, images, max_new_tokens=cfg.max_new_tokens))
    else:
        pieces = []
        for piece in gen.generate(prompt, images, max_new_tokens=cfg.max_new_tokens, stream=True):
            pieces.append(piece)
            on_token(piece)
        text = "".join(pieces).strip()
    timings = {
        "retrieve": max(t_retrieve - t_rerank, 0.0),
        "rerank": t_rerank,
        "load": t_load,
        "pack": t_pack,
        "generate": time.perf_counter() - t2,
    }
    return Answer(question, text, sources, {k: round(v, 4) for k, v in timings.items()}, gen.model_id)


__all__ = [
    "INSUFFICIENT",
    "Answer",
    "Generator",
    "Source",
    "answer",
    "generator_info",
    "load_generator",
    "memory_footprint",
    "pack_context",
]
