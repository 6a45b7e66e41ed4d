"""Tiny random late-interaction page retrievers (ColPali, ColQwen2) saved as ordinary folders.

Like `tiny_generators`, each builder writes what `from_pretrained` reads, so `mmrag` loads them as it
loads the released checkpoints. The image processors are transformers' PIL versions (no torchvision).
Weights are random (seeded): good for comparing a computation with its reference, nothing else.
"""

from __future__ import annotations

from pathlib import Path

from tiny_generators import tiny_tokenizer

# Qwen2-VL's vision markers (ColQwen2's page prompt holds all of them).
QWEN_TOKENS = ("<|vision_start|>", "<|image_pad|>", "<|vision_end|>", "<|video_pad|>", "<|endoftext|>")


def qwen2_vl_configs(tok: object, hidden: int = 64) -> tuple[dict[str, object], dict[str, object]]:
    """Text and vision sub-configs of a tiny Qwen2-VL (2 px patches, 2x2 merge: 4 px per token)."""
    text = {
        "vocab_size": len(tok),  # type: ignore[arg-type]
        "hidden_size": hidden,
        "intermediate_size": 2 * hidden,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        # multimodal RoPE: sections over (time, height, width) summing to head_dim / 2
        "rope_scaling": {"type": "mrope", "mrope_section": [4, 2, 2]},
        "bos_token_id": tok.bos_token_id,  # type: ignore[attr-defined]
        "eos_token_id": tok.eos_token_id,  # type: ignore[attr-defined]
        "pad_token_id": tok.pad_token_id,  # type: ignore[attr-defined]
    }
    vision = {
        "depth": 2,
        "embed_dim": 32,
        "hidden_size": hidden,
        "num_heads": 4,
        "mlp_ratio": 2,
        "patch_size": 2,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
        "in_channels": 3,
    }
    return text, vision


def tiny_colqwen2(folder: str | Path, dim: int = 16, seed: int = 0) -> Path:
    """A random ColQwen2 (tiny Qwen2-VL, `dim`-d projection) with its processor (16-32 px pages)."""
    import torch
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor, Qwen2VLConfig
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    tok = tiny_tokenizer(extra_special=QWEN_TOKENS)
    text, vision = qwen2_vl_configs(tok)
    vlm = Qwen2VLConfig(
        text_config={"model_type": "qwen2_vl_text", **text},
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tok.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tok.convert_tokens_to_ids("<|vision_start|>"),
    )
    torch.manual_seed(seed)
    model = ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=dim)).eval()
    images = Qwen2VLImageProcessorPil(
        min_pixels=16 * 16, max_pixels=32 * 32, patch_size=2, merge_size=2, temporal_patch_size=2
    )
    prompt = (
        "<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>"
        "describe the image<|im_end|><|endoftext|>"
    )
    processor = ColQwen2Processor(image_processor=images, tokenizer=tok, visual_prompt_prefix=prompt)
    out = Path(folder)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


def tiny_colpali(folder: str | Path, dim: int = 16, seed: int = 0) -> Path:
    """A random ColPali (tiny PaliGemma: SigLIP tower on 8 px images, 16 patches; Gemma) and processor."""
    import torch
    from transformers import ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, PaliGemmaConfig
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    tok = tiny_tokenizer(extra_special=("<image>",))
    text = {
        "model_type": "gemma",
        "vocab_size": len(tok),
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": 16,
        "max_position_embeddings": 256,
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
        "projection_dim": 64,
    }
    vlm = PaliGemmaConfig(
        text_config=text,
        vision_config=vision,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
        projection_dim=64,
    )
    torch.manual_seed(seed)
    model = ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=dim)).eval()
    images = SiglipImageProcessorPil(size={"height": 8, "width": 8})
    images.image_seq_length = 16  # 8 px / 2 px patches = a 4x4 grid
    processor = ColPaliProcessor(
        image_processor=images, tokenizer=tok, visual_prompt_prefix="describe the image"
    )
    out = Path(folder)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
