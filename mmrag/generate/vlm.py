"""Hugging Face VLMs (LLaVA-1.5, LLaVA-OneVision, Qwen2-VL, ...) as generators.

Prompts go through `processor.apply_chat_template` with image entries in the user's content, so
each model family gets its own image markers and turn format. With 4-bit loading only the language
model is quantised: the vision tower and the projector are skipped and stay in 16 bits.

Example:
    >>> vlm = VLMGenerator.load("llava-hf/llava-1.5-7b-hf")
    >>> vlm.generate("What colour is the car?", [image])
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mmrag.device import resolve_device, resolve_dtype, torch_dtype
from mmrag.generate.decode import generate_from
from mmrag.generate.llm import quantization_config
from mmrag.missing import OFFLINE_GENERATOR, load_error
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image

# Modules that stay unquantised in 4-bit mode: LLaVA/OneVision (`vision_tower`, `multi_modal_projector`),
# Qwen2-VL (`visual`), Idefics3/SmolVLM (`vision_model`, `connector`). transformers matches these from
# the start of the full module name, hence the leading `.*`.
KEEP_FULL_PRECISION = [
    r".*vision_tower",
    r".*multi_modal_projector",
    r".*visual",
    r".*vision_model",
    r".*connector",
    "lm_head",
]


def load_vlm(
    model_id: str, device: str = "auto", dtype: str = "auto", quantize: bool | None = None
) -> tuple[Any, Any]:
    """`(model, processor)` for an image-text-to-text model, optionally with a 4-bit NF4 language model."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = resolve_device(device)
    weights = torch_dtype(resolve_dtype(dtype, device))
    kw: dict[str, Any] = {"dtype": weights}
    qcfg = quantization_config(quantize, device, weights, skip_modules=KEEP_FULL_PRECISION)
    if qcfg is not None:
        kw.update(quantization_config=qcfg, device_map={"": device})
    try:
        processor = _processor(AutoProcessor, model_id)
        try:
            model: Any = AutoModelForImageTextToText.from_pretrained(model_id, **kw)
        except ValueError:
            # Older checkpoints register only the LLaVA class.
            from transformers import LlavaForConditionalGeneration

            model = LlavaForConditionalGeneration.from_pretrained(model_id, **kw)
    except (OSError, ValueError) as e:
        raise load_error(model_id, e, "cannot load vision-language model", OFFLINE_GENERATOR) from e
    if qcfg is None:
        model = model.to(device)
    tok = getattr(processor, "tokenizer", None)
    if tok is not None and tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.eval(), processor


def _processor(auto: Any, model_id: str) -> Any:
    """`AutoProcessor.from_pretrained`, with the one fix a user needs named when it fails for want of
    torchvision: transformers 5.24 builds no processor that has a video processor (Qwen2.5-VL,
    Qwen3-VL, SmolVLM2, LLaVA-OneVision) without it, even for images alone."""
    import importlib.util

    try:
        return auto.from_pretrained(model_id)
    except (AttributeError, ImportError) as e:
        if importlib.util.find_spec("torchvision") is None:
            raise MMRAGError(
                f"{model_id}: its processor needs torchvision (transformers builds its video processor "
                "with it): pip install 'mmrag[vlm]', which brings torchvision with the CUDA build of torch"
            ) from e
        raise


class VLMGenerator:
    """A transformers VLM answering a prompt about zero or more images."""

    def __init__(self, model: Any, processor: Any) -> None:
        self.model = model
        self.processor = processor

    @classmethod
    def load(cls, model_id: str, **kw: Any) -> VLMGenerator:
        """Load by hub id or folder; keywords go to `load_vlm`."""
        return cls(*load_vlm(model_id, **kw))

    def inputs(self, prompt: str, images: Sequence[Image.Image] = ()) -> dict[str, Any]:
        """Processor outputs (ids, mask, pixels) for one user turn holding the images, then the text."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in images]
        content.append({"type": "text", "text": prompt})
        messages = [{"role": "user", "content": content}]
        if not getattr(self.processor, "chat_template", None):
            raise MMRAGError("the processor has no chat template; use an instruction-tuned VLM")
        text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        rgb = [im.convert("RGB") for im in images]
        batch = self.processor(images=rgb or None, text=text, return_tensors="pt")
        dtype = next(p.dtype for p in self.model.parameters() if p.is_floating_point())
        return {
            k: (v.to(self.model.device, dtype) if v.is_floating_point() else v.to(self.model.device))
            for k, v in batch.items()
        }

    def generate(
        self,
        prompt: str,
        images: Sequence[Image.Image] = (),
        max_new_tokens: int = 128,
        stream: bool = False,
        **gen_kw: Any,
    ) -> str | Iterator[str]:
        """Answer `prompt` about `images`; greedy unless `gen_kw` says otherwise."""
        tok = getattr(self.processor, "tokenizer", self.processor)
        return generate_from(self.model, tok, self.inputs(prompt, images), max_new_tokens, stream, **gen_kw)
