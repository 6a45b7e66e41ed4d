"""Tiny random generators (LLM, VLMs, a vision tower) saved as ordinary folders, for tests and
plumbing checks without a model hub (`tiny_models` has the tiny encoders).

Each builder writes what `from_pretrained` reads (config, safetensors weights, tokenizer or image
processor), so the code under test loads them exactly as it loads real models. Weights are random
(seeded); the models are only good for comparing a computation with its reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# A word-level vocabulary large enough for the prompts the tests send.
WORDS = (
    "you are a helpful assistant user system what is the color shape of in image this picture describe "
    "does contain there not red blue green yellow circle square triangle rectangle yes no capital france "
    "paris answer question context source sources insufficient information photo"
).split()
SPECIALS = ["<unk>", "<pad>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image>{% else %}{{ c['text'] }}{% endif %}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def tiny_tokenizer(extra_special: tuple[str, ...] = ()) -> Any:
    """A word-level fast tokenizer with a ChatML-style chat template."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate([*SPECIALS, *extra_special, *WORDS, "?", ".", ",", ":", "\n"])}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        extra_special_tokens=None,
    )
    tok.add_tokens([*SPECIALS[2:], *extra_special], special_tokens=True)
    tok.chat_template = CHAT_TEMPLATE
    return tok


def tiny_llama(folder: str | Path, hidden: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A random 2-layer Llama causal LM with the tiny tokenizer, saved to `folder`.

    `hidden` is at least 64 by default: the CPU 4-bit kernels quantise in blocks of 64 inputs.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = tiny_tokenizer()
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).eval()
    out = Path(folder)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def tiny_clip_vision(folder: str | Path, hidden: int = 32, image_size: int = 8, seed: int = 0) -> Path:
    """A random CLIP vision tower (8 px images, 2 px patches: a 4x4 grid plus CLS) and its processor."""
    import torch
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    cfg = CLIPVisionConfig(
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=image_size,
        patch_size=2,
        projection_dim=hidden,
    )
    torch.manual_seed(seed)
    model = CLIPVisionModel(cfg).eval()
    out = Path(folder)
    model.save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    ).save_pretrained(out)
    return out


def tiny_llava(folder: str | Path, seed: int = 0) -> Path:
    """A random LLaVA-1.5-style model (tiny CLIP tower, MLP projector, Llama) with its processor."""
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tok = tiny_tokenizer(extra_special=("<image>",))
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=8,
        patch_size=2,
        projection_dim=32,
    )
    text = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    cfg = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tok.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(cfg).eval()
    image_proc = CLIPImageProcessor(size={"shortest_edge": 8}, crop_size={"height": 8, "width": 8})
    processor = LlavaProcessor(
        image_processor=image_proc,
        tokenizer=tok,
        patch_size=2,
        vision_feature_select_strategy="default",
        chat_template=CHAT_TEMPLATE,
        image_token="<image>",
        num_additional_image_tokens=1,
    )
    out = Path(folder)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out


# Idefics3 (SmolVLM's architecture) marks images with these; the processor expands each `<image>`
# of the chat template into `<fake_token_around_image><global-img><image>...<fake_token_around_image>`.
IDEFICS3_TOKENS = ("<image>", "<fake_token_around_image>", "<global-img>", "<end_of_utterance>")


def tiny_idefics3(folder: str | Path, seed: int = 0) -> Path:
    """A random Idefics3/SmolVLM-style model (SigLIP-like tower, pixel-shuffle connector, Llama), processor.

    Images are resized to 8x8 px without tiling and cut into 2 px patches (a 4x4 grid); the connector's
    2x pixel shuffle folds each 2x2 block into one token, so an image costs 4 `<image>` tokens.
    Qwen2-VL would be the other non-LLaVA family, but its processor cannot be built without torchvision.
    """
    import torch
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

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
    cfg = Idefics3Config(
        text_config=text,
        vision_config=vision,
        scale_factor=2,
        image_token_id=tok.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    model = Idefics3ForConditionalGeneration(cfg).eval()
    image_proc = Idefics3ImageProcessorPil(
        do_image_splitting=False, size={"longest_edge": 8}, max_image_size={"longest_edge": 8}
    )
    processor = Idefics3Processor(
        image_processor=image_proc, tokenizer=tok, image_seq_len=4, chat_template=CHAT_TEMPLATE
    )
    out = Path(folder)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
