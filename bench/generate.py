"""Generation speed and memory of a LLaVA-architecture VLM, 4-bit NF4 against bf16, in one run.

Weights are random (speed does not depend on their values), so a fixed number of tokens is
generated with `min_new_tokens`. Records per mode: load time, GPU memory after load and peak,
time to first token with 1 and 4 images, and decode tokens/s.

    python bench/generate.py --arch llava-1.5-7b --out bench/results/generate_gpu.json   # GPU machine
    python bench/generate.py --arch tiny --device cpu                                     # plumbing check

The random checkpoint is written once to `--workdir` (bf16 safetensors, ~14 GB for 7B), because
bitsandbytes quantises while loading a checkpoint.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def llava_config(arch: str) -> Any:
    """LLaVA-1.5-7B's real shapes (CLIP ViT-L/14-336 + Vicuna-7B), or a tiny stand-in."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig

    if arch == "tiny":
        vision = CLIPVisionConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                  num_attention_heads=4, image_size=336, patch_size=14, projection_dim=64)
        text = LlamaConfig(vocab_size=32064, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=4)
    elif arch == "llava-1.5-7b":
        vision = CLIPVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24,
                                  num_attention_heads=16, image_size=336, patch_size=14, projection_dim=768,
                                  hidden_act="quick_gelu")
        text = LlamaConfig(vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                           num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096,
                           rms_norm_eps=1e-5)
    else:
        raise SystemExit(f"unknown arch {arch!r}")
    return LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000,
                       vision_feature_layer=-2, vision_feature_select_strategy="default")


def write_checkpoint(arch: str, folder: Path) -> Path:
    """A random checkpoint of the architecture (created once), with a processor."""
    import torch
    from transformers import CLIPImageProcessor, LlavaForConditionalGeneration, LlavaProcessor

    from mmrag.generate.tiny import CHAT_TEMPLATE, tiny_tokenizer

    if (folder / "config.json").is_file():
        return folder
    cfg = llava_config(arch)
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
        model = LlavaForConditionalGeneration(cfg).to(torch.bfloat16)
    model.save_pretrained(folder)
    # The word-level test tokenizer; ids beyond its vocabulary never occur, speed is unaffected.
    tok = tiny_tokenizer(extra_special=("<image>",))
    proc = LlavaProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 336},
                                                             crop_size={"height": 336, "width": 336}),
                          tokenizer=tok, patch_size=14, vision_feature_select_strategy="default",
                          chat_template=CHAT_TEMPLATE, image_token="<image>", num_additional_image_tokens=1)
    proc.save_pretrained(folder)
    # Make the checkpoint's image token match the tokenizer's.
    data = json.loads((folder / "config.json").read_text())
    data["image_token_index"] = data["image_token_id"] = tok.convert_tokens_to_ids("<image>")
    (folder / "config.json").write_text(json.dumps(data, indent=2))
    del model
    return folder


def measure(folder: Path, quantize: bool, device: str, new_tokens: int) -> dict[str, Any]:
    import torch
    from PIL import Image

    from mmrag.generate.vlm import VLMGenerator

    cuda = device.startswith("cuda")
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    dtype = "bfloat16" if cuda else "float32"
    vlm = VLMGenerator.load(str(folder), device=device, dtype=dtype, quantize=quantize)
    if cuda:
        torch.cuda.synchronize()
    row: dict[str, Any] = {"mode": "nf4" if quantize else ("bf16" if cuda else "fp32"),
                           "load_s": round(time.perf_counter() - t, 2)}
    if cuda:
        row["gpu_mem_after_load_gb"] = round(torch.cuda.memory_allocated() / 2**30, 2)
    images = [Image.new("RGB", (336, 336), (40 * i, 90, 200 - 40 * i)) for i in range(4)]
    for n in (1, 4):
        inputs = vlm.inputs("describe this picture", images[:n])
        vlm.model.generate(**inputs, max_new_tokens=2, min_new_tokens=2, do_sample=False)  # warm-up
        for tokens, key in ((1, f"ttft_{n}img_s"), (new_tokens, f"gen{new_tokens}_{n}img_s")):
            if cuda:
                torch.cuda.synchronize()
            t = time.perf_counter()
            vlm.model.generate(**inputs, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False)
            if cuda:
                torch.cuda.synchronize()
            row[key] = round(time.perf_counter() - t, 3)
        row[f"prompt_tokens_{n}img"] = int(inputs["input_ids"].shape[1])
        decode_s = row[f"gen{new_tokens}_{n}img_s"] - row[f"ttft_{n}img_s"]
        # None when timing noise swamps the decode time (tiny models on a busy CPU)
        row[f"decode_tok_s_{n}img"] = round((new_tokens - 1) / decode_s, 1) if decode_s > 0 else None
    if cuda:
        row["gpu_mem_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    del vlm
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="llava-1.5-7b", choices=["llava-1.5-7b", "tiny"])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mmrag-bench"))
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    import torch

    folder = write_checkpoint(args.arch, args.workdir / args.arch)
    rows = [measure(folder, q, args.device, args.new_tokens) for q in (True, False)]
    result = {"arch": args.arch, "weights": "random", "device": args.device,
              "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
              "torch": torch.__version__, "python": platform.python_version(), "results": rows}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
