"""Tiny random VLMs of the current families (Qwen2.5-VL, Qwen3-VL, SmolVLM2, LLaVA-OneVision), saved as
folders that `AutoModelForImageTextToText` and `AutoProcessor` load like the released checkpoints.

Image processors are transformers' PIL versions. The video processors of these families need
torchvision, and transformers 5.24 cannot build (or `AutoProcessor`-load) their processors without
one, so the builders return `(model, processor)` in memory, built with `video_processor=None`
(`without_video_processor`), for `VLMGenerator(model, processor)`. Weights are random (seeded): only
good for comparing with a reference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tiny_generators import tiny_tokenizer
from tiny_retrievers import QWEN_TOKENS, qwen2_vl_configs

# Qwen's chat template marks an image with vision start/end around one pad token (the processor
# repeats the pad once per merged patch); text content is emitted as is.
QWEN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif c['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>"
    "{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@contextmanager
def without_video_processor() -> Iterator[None]:
    """Let a processor be built with `video_processor=None` where torchvision is absent.

    transformers 5.24 checks every processor attribute against its base class, and the video base
    class is only importable with torchvision, so these processors cannot be built (or loaded by
    `AutoProcessor`) without it, even for images alone. Tests build them in memory this way; users
    install torchvision (the `vlm` extra), as README says.
    """
    from transformers.processing_utils import ProcessorMixin

    original = ProcessorMixin.check_argument_for_proper_class

    def check(self: Any, name: str, arg: Any) -> Any:
        return None if name == "video_processor" else original(self, name, arg)

    ProcessorMixin.check_argument_for_proper_class = check  # type: ignore[method-assign]
    try:
        yield
    finally:
        ProcessorMixin.check_argument_for_proper_class = original  # type: ignore[method-assign]


def tiny_qwen2_5_vl(seed: int = 0) -> tuple[Any, Any]:
    """Qwen2.5-VL: windowed-attention ViT (2 px patches, 2x2 merge), M-RoPE Qwen2 LM; 16-32 px images."""
    import torch
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = tiny_tokenizer(extra_special=QWEN_TOKENS)
    text, vision = qwen2_vl_configs(tok)
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 4,
        "out_hidden_size": text["hidden_size"],
        "patch_size": 2,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "window_size": 8,
        "fullatt_block_indexes": [1],
        "in_channels": 3,
    }
    cfg = Qwen2_5_VLConfig(
        text_config={"model_type": "qwen2_5_vl_text", **text},
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
    )
    torch.manual_seed(seed)
    model = Qwen2_5_VLForConditionalGeneration(cfg).eval()
    images = Qwen2VLImageProcessorPil(
        min_pixels=16 * 16, max_pixels=32 * 32, patch_size=2, merge_size=2, temporal_patch_size=2
    )
    with without_video_processor():
        processor = Qwen2_5_VLProcessor(image_processor=images, tokenizer=tok, chat_template=QWEN_TEMPLATE)
    return model, processor


def tiny_qwen3_vl(seed: int = 0) -> tuple[Any, Any]:
    """Qwen3-VL: ViT with learned position embeddings and DeepStack features into the Qwen3 LM."""
    import torch
    from transformers import Qwen3VLConfig, Qwen3VLForConditionalGeneration, Qwen3VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = tiny_tokenizer(extra_special=QWEN_TOKENS)
    text, _ = qwen2_vl_configs(tok)
    text = {k: v for k, v in text.items() if k != "rope_scaling"}
    text["head_dim"] = 16
    text["rope_parameters"] = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [4, 2, 2]}
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 4,
        "patch_size": 2,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "out_hidden_size": text["hidden_size"],
        "num_position_embeddings": 256,
        "deepstack_visual_indexes": [0],
    }
    cfg = Qwen3VLConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tok.convert_tokens_to_ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    model = Qwen3VLForConditionalGeneration(cfg).eval()
    images = Qwen2VLImageProcessorPil(
        min_pixels=16 * 16, max_pixels=32 * 32, patch_size=2, merge_size=2, temporal_patch_size=2
    )
    with without_video_processor():
        processor = Qwen3VLProcessor(image_processor=images, tokenizer=tok, chat_template=QWEN_TEMPLATE)
    return model, processor


def tiny_smolvlm(seed: int = 0) -> tuple[Any, Any]:
    """SmolVLM2 (Idefics3 architecture: SigLIP tower, pixel-shuffle connector, Llama LM); 8 px images."""
    import torch
    from tiny_generators import CHAT_TEMPLATE, IDEFICS3_TOKENS
    from transformers import SmolVLMConfig, SmolVLMForConditionalGeneration, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_pil_smolvlm import SmolVLMImageProcessorPil

    tok = tiny_tokenizer(extra_special=IDEFICS3_TOKENS)
    text = {
        "model_type": "llama",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 8,
        "patch_size": 2,
    }
    cfg = SmolVLMConfig(
        text_config=text,
        vision_config=vision,
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = SmolVLMForConditionalGeneration(cfg).eval()
    images = SmolVLMImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 8}, max_image_size={"longest_edge": 8}
    )
    from transformers.video_processing_utils import BaseVideoProcessor

    # SmolVLM's chat template reads the video processor's frame count even for images; the base class
    # needs no torchvision to exist, only to process videos (never asked of it here).
    frames = BaseVideoProcessor()
    frames.num_frames = 8
    with without_video_processor():
        processor = SmolVLMProcessor(
            image_processor=images,
            tokenizer=tok,
            video_processor=frames,
            image_seq_len=4,
            chat_template=CHAT_TEMPLATE,
        )
    return model, processor


def tiny_llava_onevision(seed: int = 0) -> tuple[Any, Any]:
    """LLaVA-OneVision (SigLIP tower, MLP projector, Qwen2 LM), one 8 px tile per image (no anyres grid)."""
    import torch
    from tiny_generators import CHAT_TEMPLATE
    from transformers import (
        LlavaOnevisionConfig,
        LlavaOnevisionForConditionalGeneration,
        LlavaOnevisionProcessor,
    )
    from transformers.models.llava_onevision.image_processing_pil_llava_onevision import (
        LlavaOnevisionImageProcessorPil,
    )

    tok = tiny_tokenizer(extra_special=("<image>", "<video>"))
    text = {
        "model_type": "qwen2",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tok.bos_token_id,
        "eos_token_id": tok.eos_token_id,
        "pad_token_id": tok.pad_token_id,
    }
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "image_size": 8,
        "patch_size": 2,
    }
    cfg = LlavaOnevisionConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        video_token_index=tok.convert_tokens_to_ids("<video>"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_grid_pinpoints=[[8, 8]],
        vision_aspect_ratio="anyres_max_1",
    )
    torch.manual_seed(seed)
    model = LlavaOnevisionForConditionalGeneration(cfg).eval()
    images = LlavaOnevisionImageProcessorPil(size={"height": 8, "width": 8}, image_grid_pinpoints=[[8, 8]])
    with without_video_processor():
        processor = LlavaOnevisionProcessor(
            image_processor=images,
            tokenizer=tok,
            num_image_tokens=16,
            vision_feature_select_strategy="full",
            chat_template=CHAT_TEMPLATE,
            vision_aspect_ratio="anyres_max_1",
        )
    return model, processor
