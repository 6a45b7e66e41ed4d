"""Tiny random dual encoders saved as hub-style folders, so they load by path like a hub model.

Each builder writes `config.json`, safetensors weights, a tokenizer and an image processor into a
folder and returns it. The models are random (seeded) and tiny (hidden 32, 2 layers, 30-px images,
a character-level vocabulary of about 500 entries), so a whole load-and-encode round trip takes
well under a second on a CPU. Tests compare our encoders with the reference transformers
computation on the same folder, never with pasted numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

IMAGE_SIZE = 30
PATCH = 10
HIDDEN = 32
PROJ = 24
MAX_TEXT = 16

_TINY = {"hidden_size": HIDDEN, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4}


def _byte_level_vocab() -> list[str]:
    """The 256 printable stand-ins of GPT-2/CLIP byte-level BPE, in their canonical order."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    bs += list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def clip_tokenizer(max_length: int = MAX_TEXT, **kw: Any) -> Any:
    """A character-level CLIP tokenizer: every byte is a token (no merges), plus `</w>` word ends."""
    from transformers import CLIPTokenizer

    chars = _byte_level_vocab()
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length, **kw)


def bert_tokenizer(max_length: int = MAX_TEXT) -> Any:
    """A character-level WordPiece tokenizer (lowercase letters, digits, punctuation, `##` pieces)."""
    from transformers import BertTokenizer

    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *("##" + c for c in chars)]
    return BertTokenizer(vocab={t: i for i, t in enumerate(tokens)}, model_max_length=max_length)


def _text_ids(tok: Any) -> dict[str, int]:
    return {
        "vocab_size": len(tok),
        "pad_token_id": tok.pad_token_id,
        "eos_token_id": tok.eos_token_id,
        "bos_token_id": tok.bos_token_id,
    }


def _save(folder: Path, model: Any, processor: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    processor.save_pretrained(folder)
    return folder


def build_tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A random CLIPModel with a CLIP tokenizer and image processor, saved in `folder`."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessorPil, CLIPModel, CLIPProcessor

    tok = clip_tokenizer()
    cfg = CLIPConfig(
        text_config={**_TINY, **_text_ids(tok), "max_position_embeddings": MAX_TEXT},
        vision_config={**_TINY, "image_size": IMAGE_SIZE, "patch_size": PATCH},
        projection_dim=PROJ,
    )
    torch.manual_seed(seed)
    model = CLIPModel(cfg).eval()
    images = CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return _save(folder, model, CLIPProcessor(image_processor=images, tokenizer=tok))


def build_tiny_siglip(folder: Path, seed: int = 0) -> Path:
    """A random SiglipModel; like the real SigLIP tokenizer, it returns no attention mask."""
    import torch
    from transformers import SiglipConfig, SiglipImageProcessorPil, SiglipModel, SiglipProcessor

    tok = clip_tokenizer(model_input_names=["input_ids"])
    cfg = SiglipConfig(
        text_config={**_TINY, **_text_ids(tok), "max_position_embeddings": MAX_TEXT},
        vision_config={**_TINY, "image_size": IMAGE_SIZE, "patch_size": PATCH},
    )
    torch.manual_seed(seed)
    model = SiglipModel(cfg).eval()
    with torch.no_grad():  # a non-zero bias, so a test notices if it is dropped
        model.logit_bias.fill_(-1.5)
    images = SiglipImageProcessorPil(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    return _save(folder, model, SiglipProcessor(image_processor=images, tokenizer=tok))


def build_tiny_chinese_clip(folder: Path, seed: int = 0) -> Path:
    """A random ChineseCLIPModel (BERT text tower): a dual encoder loaded through `AutoModel`."""
    import torch
    from transformers import (
        ChineseCLIPConfig,
        ChineseCLIPImageProcessorPil,
        ChineseCLIPModel,
        ChineseCLIPProcessor,
    )

    tok = bert_tokenizer()
    cfg = ChineseCLIPConfig(
        text_config={
            **_TINY,
            "vocab_size": len(tok),
            "pad_token_id": tok.pad_token_id,
            "max_position_embeddings": MAX_TEXT,
        },
        vision_config={**_TINY, "image_size": IMAGE_SIZE, "patch_size": PATCH, "projection_dim": PROJ},
        projection_dim=PROJ,
    )
    torch.manual_seed(seed)
    model = ChineseCLIPModel(cfg).eval()
    images = ChineseCLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )
    return _save(folder, model, ChineseCLIPProcessor(image_processor=images, tokenizer=tok))


def build_tiny_bert(folder: Path, seed: int = 0) -> Path:
    """A random BertModel with a tokenizer and no `modules.json`: the plain mean-pooling text path."""
    import torch
    from transformers import BertConfig, BertModel

    tok = bert_tokenizer(max_length=32)
    cfg = BertConfig(**_TINY, vocab_size=len(tok), max_position_embeddings=32, pad_token_id=tok.pad_token_id)
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    BertModel(cfg).eval().save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return folder


def random_images(n: int, seed: int = 0) -> list[Any]:
    """`n` random RGB images of varied sizes and modes (one grey, one RGBA), to exercise conversion."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(24, 60)), int(rng.integers(24, 60))
        im = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        out.append(im.convert("L") if i % 3 == 1 else im.convert("RGBA") if i % 3 == 2 else im)
    return out
