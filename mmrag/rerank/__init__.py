"""Second-stage reranking of fused candidates, behind one interface, and adaptive top-k.

Methods (`rerank.method`):

- `cross-encoder`: a sequence classifier reads query and passage together (`BAAI/bge-reranker-base`).
- `llm`: a causal LM is asked whether the passage helps answer the question; p(yes) from the
  yes/no logits (packaged `smollm2-135m` by default).
- `vlm`: the same with the hit's picture for image, page and video hits (`generate.model`).
- `bi-encoder`: cosine with the index's own embedders; no new model.

Every method returns relevance probabilities in [0, 1]; `rerank` reorders the hits by them and
keeps `k`, or with `rerank.adaptive_k` as many as `adaptive_k` chooses.

Example:
    >>> from mmrag.config import RerankConfig
    >>> cfg = RerankConfig(method="llm", adaptive_k=True)
    >>> reranker = make_reranker(cfg)                                     # doctest: +SKIP
    >>> hits = pipe.search("who won?", k=cfg.candidates)                  # doctest: +SKIP
    >>> result = rerank(reranker, "who won?", hits, cfg, k=5)             # doctest: +SKIP
    >>> result.k, [h.score for h in result.hits]                          # doctest: +SKIP
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

from mmrag.config import RerankMethod
from mmrag.rerank.adaptive import adaptive_k
from mmrag.rerank.base import Reranker, RerankResult, passage, rerank
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.config import GenerateConfig, RerankConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.types import Hit

__all__ = [
    "METHODS",
    "RerankResult",
    "Reranker",
    "adaptive_k",
    "default_model",
    "make_reranker",
    "passage",
    "rerank",
    "rerank_hits",
]

METHODS: tuple[str, ...] = get_args(RerankMethod)
DEFAULT_LLM = "smollm2-135m"

# Loaded rerankers per (method, model, device, quantize): a model loads once per process.
_LOADED: dict[tuple[str, str, str, bool | None], Reranker] = {}


def default_model(method: str, generate: GenerateConfig | None = None) -> str | None:
    """The model a method uses when `rerank.model` is None (None for `bi-encoder` and `none`)."""
    from mmrag.config import GenerateConfig
    from mmrag.rerank.cross_encoder import DEFAULT_MODEL

    return {
        "cross-encoder": DEFAULT_MODEL,
        "llm": DEFAULT_LLM,
        "vlm": (generate or GenerateConfig()).model,
    }.get(method)


def make_reranker(
    cfg: RerankConfig,
    generate: GenerateConfig | None = None,
    embedders: Embedders | None = None,
    prompt_dir: str | Path | None = None,
) -> Reranker | None:
    """The reranker a config asks for, loaded once per process.

    Args:
        cfg: `method`, `model` (None: the method's default) and `batch_size`.
        generate: Device and 4-bit setting for the `llm`/`vlm` models (and the device of the
            cross-encoder), and the default `vlm` model; None uses `GenerateConfig()`'s.
        embedders: The index's embedders; required by `bi-encoder`.
        prompt_dir: Folder of templates overriding the packaged `rerank.txt` / `rerank.vlm.txt`.

    Returns:
        A `Reranker`, or None for method `none`.

    Raises:
        MMRAGError: Unknown method, a model that cannot be loaded or cannot play the role, or
            `bi-encoder` without embedders.
    """
    method = cfg.method
    if method not in METHODS:
        raise MMRAGError(f"unknown rerank method {method!r}: choose one of {', '.join(METHODS)}")
    if method == "none":
        return None
    if method == "bi-encoder":
        if embedders is None:
            raise MMRAGError("bi-encoder reranking needs the index's embedders (Pipeline.embedders)")
        from mmrag.rerank.biencoder import BiEncoderReranker

        return BiEncoderReranker(embedders, batch_size=max(cfg.batch_size, 1))
    model = cfg.model or default_model(method, generate) or ""
    device = generate.device if generate is not None else "auto"
    quantize = generate.quantize if generate is not None else None
    from mmrag.device import resolve_device

    key = (method, model, resolve_device(device), quantize)  # `auto` and `cpu` are one model on a CPU
    if key not in _LOADED:
        _LOADED[key] = _load(method, model, device, quantize)
    # A shallow copy shares the model but carries this config's batch size and prompt folder.
    reranker = copy.copy(_LOADED[key])
    reranker.batch_size = max(cfg.batch_size, 1)
    if prompt_dir is not None:
        reranker.prompt_dir = prompt_dir  # type: ignore[attr-defined]
    return reranker


def _load(method: str, model: str, device: str, quantize: bool | None) -> Reranker:
    loaded: Any
    if method == "cross-encoder":
        from mmrag.rerank.cross_encoder import CrossEncoderReranker

        loaded = CrossEncoderReranker.load(model, device=device)
    elif method == "llm":
        from mmrag.rerank.llm import load_llm_reranker

        loaded = load_llm_reranker(model, device=device, quantize=quantize)
    else:
        from mmrag.rerank.vlm import load_vlm_reranker

        loaded = load_vlm_reranker(model, device=device, quantize=quantize)
    return loaded


def rerank_hits(
    hits: list[Hit],
    question: str,
    k: int,
    cfg: RerankConfig,
    generate: GenerateConfig | None = None,
    embedders: Embedders | None = None,
) -> tuple[list[Hit], int, str | None, float]:
    """Rerank retrieved candidates for a question: (hits kept, k, reranker name, seconds).

    With `method="none"` (or no model for the method) the first `k` candidates are kept as they are.
    """
    reranker = make_reranker(cfg, generate, embedders) if cfg.method != "none" and hits else None
    if reranker is None:
        return hits[:k], min(k, len(hits)), None, 0.0
    res = rerank(reranker, question, hits, cfg, k)
    return res.hits[: res.k], res.k, reranker.name, res.seconds
