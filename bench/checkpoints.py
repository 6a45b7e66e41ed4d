"""Random checkpoints for the generation benches (`bench/generate.py`, `bench/answer.py`): real
architectures' shapes with random weights, written once in bf16 safetensors to a work folder.

- `random_llm`: a Llama of SmolLM2-1.7B's or Llama-2-7B's shape with SmolLM2's tokenizer;
- `random_llava`: LLaVA-1.5-7B's shapes (CLIP ViT-L/14-336 + Vicuna-7B), or a tiny LLaVA
  (`llava-tiny`, from the tests' `tiny_generators`) for plumbing checks.

Random weights decode as fast as real ones when the number of new tokens is fixed, which is how
every bench that uses them times generation.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))  # tiny_generators: the tiny test models

SMOLLM2_TOKENIZER = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
)

# Llama shapes with SmolLM2's vocabulary (its tokenizer drives them): SmolLM2-1.7B's own, and
# Llama-2-7B's layers (untied embeddings, 6.9B parameters with this vocabulary).
LLM_SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                         num_attention_heads=32, tie_word_embeddings=True, rope_theta=130000.0),
    "llama-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                     num_attention_heads=32, tie_word_embeddings=False, rope_theta=10000.0),
}  # fmt: skip


def random_llm(workdir: Path, shape: str = "smollm2-1.7b") -> Path:
    """A random-init Llama of `shape` with SmolLM2's tokenizer, saved as a bf16 folder (made once)."""
    import shutil

    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from mmrag.generate.llm import resolve_llm

    out = workdir / f"{shape}-random"
    if (out / "config.json").is_file():
        return out
    dims = dict(LLM_SHAPES[shape])
    rope = {"rope_type": "default", "rope_theta": dims.pop("rope_theta")}
    cfg = LlamaConfig(**dims, vocab_size=49152, num_key_value_heads=dims["num_attention_heads"],
                      max_position_embeddings=8192, rms_norm_eps=1e-5, rope_parameters=rope,
                      bos_token_id=1, eos_token_id=2, pad_token_id=2)  # fmt: skip
    torch.manual_seed(0)
    torch.set_default_dtype(torch.bfloat16)  # built in bf16: no float32 copy of the weights
    try:
        model = LlamaForCausalLM(cfg)
    finally:
        torch.set_default_dtype(torch.float32)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp, max_shard_size="1GB")
    source = Path(resolve_llm("smollm2-135m"))  # the converted SmolLM2-135M: same tokenizer
    for name in SMOLLM2_TOKENIZER:
        shutil.copy(source / name, tmp / name)
    tmp.rename(out)
    return out


def llava_config() -> Any:
    """LLaVA-1.5-7B's shapes: CLIP ViT-L/14 at 336 px (576 tokens an image) + Vicuna-7B."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16)
    text = dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32)
    return LlavaConfig(
        vision_config=CLIPVisionConfig(
            **vision, image_size=336, patch_size=14, projection_dim=768, hidden_act="quick_gelu"
        ),
        text_config=LlamaConfig(
            **text, vocab_size=32064, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5
        ),
        image_token_index=32000,
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )


def random_llava(arch: str, workdir: Path) -> Path:
    """A random LLaVA checkpoint with a processor (made once; 14 GB for 7B; `llava-tiny` for plumbing)."""
    import torch
    from tiny_generators import CHAT_TEMPLATE, tiny_llava, tiny_tokenizer
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration, LlavaProcessor

    out = workdir / arch
    if (out / "config.json").is_file():
        return out
    if arch == "llava-tiny":
        return tiny_llava(out)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlavaForConditionalGeneration(llava_config()).to(torch.bfloat16)
    tmp = out.with_name(out.name + ".partial")
    model.save_pretrained(tmp)
    # The word-level test tokenizer: ids beyond its vocabulary never occur; speed is unaffected.
    tok = tiny_tokenizer(extra_special=("<image>",))
    image_proc = CLIPImageProcessor(size={"shortest_edge": 336}, crop_size={"height": 336, "width": 336})
    LlavaProcessor(image_processor=image_proc, tokenizer=tok, patch_size=14, chat_template=CHAT_TEMPLATE,
                   vision_feature_select_strategy="default", image_token="<image>",
                   num_additional_image_tokens=1).save_pretrained(tmp)  # fmt: skip
    data = json.loads((tmp / "config.json").read_text())
    data["image_token_index"] = data["image_token_id"] = tok.convert_tokens_to_ids("<image>")
    (tmp / "config.json").write_text(json.dumps(data, indent=2))
    tmp.rename(out)
    return out
