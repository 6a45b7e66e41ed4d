"""The one place generators are loaded: a bridge folder, an HF VLM, or a text LLM, behind `Generator`.

Rerankers, multi-hop decomposition, video QA and `ask` all receive a `Generator` from here; loaded
generators are kept for the process (one per model, device and 4-bit setting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.generate import is_bridge
from mmrag.missing import (
    OFFLINE_GENERATOR,
    bridge_missing,
    is_hub_id,
    load_error,
    package_folder,
    require_hub_model,
    require_parts,
)
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import GenerateConfig


class Generator:
    """One interface over the three backends: text LLM, HF VLM, projector bridge."""

    def __init__(self, backend: Any, reads_images: bool, model_id: str, dtype: str = "auto") -> None:
        self.backend = backend
        self.reads_images = reads_images
        self.model_id = model_id
        self.dtype = dtype

    def generate(
        self,
        prompt: str,
        images: Sequence[Image.Image] = (),
        max_new_tokens: int = 256,
        stream: bool = False,
        **gen_kw: Any,
    ) -> str | Iterator[str]:
        """Answer `prompt` (about `images`); `gen_kw` reaches `mmrag.generate.decode.generate_from`
        (`stop_on_repetition`, `repeat_ngram`, `repetition_penalty`, transformers' generate options)."""
        if images and not self.reads_images:
            raise MMRAGError(f"{self.model_id} reads no images; use a VLM or a bridge as the generator")
        if self.reads_images:
            out: str | Iterator[str] = self.backend.generate(
                prompt, images, max_new_tokens=max_new_tokens, stream=stream, **gen_kw
            )
        else:
            out = self.backend.generate(prompt, max_new_tokens=max_new_tokens, stream=stream, **gen_kw)
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
    require_generator(cfg.model)
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

        # bfloat16 on a CPU with native bf16 under `auto`: half the time to the first token
        gen = Generator(TextGenerator.load(cfg.model, cpu_bf16=True, **kw), False, cfg.model, dtype)
    from mmrag.generate.llm import warm_cpu_4bit

    warm_cpu_4bit(gen.backend.llm if hasattr(gen.backend, "llm") else gen.backend.model)
    _GENERATORS[key] = gen
    return gen


def memory_footprint(backend: Any) -> int:
    """Bytes held by a loaded backend's parameters and buffers (4-bit weights count as packed)."""
    if is_bridge(backend):  # a bridge: the LM's own footprint plus tower and projector
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

    from mmrag.device import resolve_device

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
    from mmrag.generate.llm import packaged_llm

    if packaged_llm(model_id) is not None:  # a registered text LLM: no config to read before it is built
        return False
    from transformers import AutoConfig

    try:
        cfg = AutoConfig.from_pretrained(model_id)
    except (OSError, ValueError) as e:
        raise load_error(model_id, e, "cannot read the generator's config", OFFLINE_GENERATOR) from e
    return getattr(cfg, "vision_config", None) is not None


def require_generator(spec: str) -> None:
    """Fail early, in one line saying what to run, when the generator `spec` cannot load here.

    A packaged LLM whose pip package (or one of whose parts) is missing, a path that does not exist
    (taken for a bridge not trained yet: the one generator made here), or a hub id that is not cached
    while the hub is off (`mmrag.missing`). Evaluation suites call it before their other work.
    """
    from mmrag.generate.llm import converted, converted_folder, packaged_llm

    desc = packaged_llm(spec)
    if desc is not None:
        if desc.parts is None and desc.package is not None:
            package_folder(desc.package, spec)
        elif not converted(converted_folder(desc)):  # once converted, the parts are not read again
            require_parts(desc)
        return
    folder = Path(spec).expanduser()
    if folder.exists():
        return
    if not is_hub_id(spec):
        raise bridge_missing(folder)
    require_hub_model(spec, instead=OFFLINE_GENERATOR)
