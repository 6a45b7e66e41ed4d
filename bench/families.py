"""Speed and memory of the issue-18 families at real size, with random weights (for a lent GPU).

- `colqwen2`: ColQwen2 at Qwen2-VL-2B's geometry embedding pages of `--page-tokens` merged patches
  (768: the released processor's cap), `--batch` pages a pass: pages per second and peak memory.
- `qwen2.5-vl-7b`: Qwen2.5-VL-7B in bfloat16 and in NF4 (the language model only; tower, embeddings
  and head in bfloat16, as `mmrag.generate.vlm` loads it): weight memory, time to first token for one
  page (`--page-tokens` image tokens) and `--prompt-tokens` of text, decode tokens per second over
  `--new-tokens` forced new tokens.

Speed does not depend on weight values, so random weights measure what real ones would; inputs are
built directly (token ids and patch pixels), since no processor can be downloaded here. `--tiny`
runs the same code on tiny configurations: the CPU smoke test that keeps this script working
between GPU runs (`tests/test_bench_families.py`).

Usage: python bench/families.py [--tiny] [--out bench/results/families.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, write_json  # noqa: E402

# Qwen2-VL-2B (ColQwen2's base) and Qwen2.5-VL-7B, from their released config.json files.
QWEN2_VL_2B = {
    "text": {"vocab_size": 151936, "hidden_size": 1536, "intermediate_size": 8960, "num_hidden_layers": 28,
             "num_attention_heads": 12, "num_key_value_heads": 2, "max_position_embeddings": 32768,
             "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "tie_word_embeddings": True},
    "vision": {"depth": 32, "embed_dim": 1280, "hidden_size": 1536, "num_heads": 16, "mlp_ratio": 4,
               "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2},
}  # fmt: skip
QWEN2_5_VL_7B = {
    "text": {"vocab_size": 152064, "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "num_key_value_heads": 4, "max_position_embeddings": 128000,
             "rope_scaling": {"type": "mrope", "mrope_section": [16, 24, 24]}, "tie_word_embeddings": False},
    "vision": {"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16,
               "out_hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2,
               "window_size": 112, "fullatt_block_indexes": [7, 15, 23, 31]},
}  # fmt: skip
TINY_TEXT = {"vocab_size": 512, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
             "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 4096,
             "rope_scaling": {"type": "mrope", "mrope_section": [4, 2, 2]}, "tie_word_embeddings": False,
             "bos_token_id": 504, "eos_token_id": 505}  # fmt: skip
TINY_VISION = {"depth": 2, "embed_dim": 32, "hidden_size": 64, "intermediate_size": 64, "num_heads": 4,
               "mlp_ratio": 2, "out_hidden_size": 64, "patch_size": 2, "spatial_merge_size": 2,
               "temporal_patch_size": 2, "window_size": 8, "fullatt_block_indexes": [1]}  # fmt: skip
# special token ids, past the random vocabulary's ordinary tokens
IMAGE, VIDEO, START, END = 151655, 151656, 151652, 151653


def _ids(tiny: bool) -> dict[str, int]:
    base = 500 if tiny else 0
    if tiny:
        return {"image": base, "video": base + 1, "start": base + 2, "end": base + 3}
    return {"image": IMAGE, "video": VIDEO, "start": START, "end": END}


def page_inputs(
    tokens: int, text: int, batch: int, patch: int, ids: dict[str, int], device: str
) -> dict[str, Any]:
    """A batch of one-page prompts: `text` random text tokens around `tokens` image tokens (a 2 x 2 merge
    of a (2, 2*tokens) patch grid, i.e. a wide page), with random patch pixels."""
    import torch

    h, w = 2, 2 * tokens  # merged 2x2: h * w / 4 = tokens
    grid = torch.tensor([[1, h, w]] * batch, device=device)
    pixels = torch.randn(batch * h * w, 3 * 2 * patch * patch, device=device)
    row = [ids["start"], *[ids["image"]] * tokens, ids["end"]]
    filler = torch.randint(10, 400, (batch, text), device=device)
    input_ids = torch.cat([torch.tensor([row] * batch, device=device), filler], dim=1)
    return {
        "input_ids": input_ids,
        "attention_mask": torch.ones_like(input_ids),
        "pixel_values": pixels,
        "image_grid_thw": grid,
    }


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _peak(device: str) -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if device.startswith("cuda") else None


def colqwen2(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Pages per second of ColQwen2 at real size (or tiny)."""
    import torch
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, Qwen2VLConfig

    ids = _ids(args.tiny)
    geo = {"text": TINY_TEXT, "vision": TINY_VISION} if args.tiny else QWEN2_VL_2B
    qwen2_5_only = ("out_hidden_size", "window_size", "fullatt_block_indexes", "intermediate_size")
    vision = {k: v for k, v in geo["vision"].items() if k not in qwen2_5_only}
    vlm = Qwen2VLConfig(
        text_config={"model_type": "qwen2_vl_text", **geo["text"]},
        vision_config=vision,
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["start"],
    )
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = ColQwen2ForRetrieval(ColQwen2Config(vlm_config=vlm, embedding_dim=128)).to(device, dtype).eval()
    patch = int(vision["patch_size"])
    batch = page_inputs(args.page_tokens, 24, args.batch, patch, ids, device)
    batch["pixel_values"] = (
        batch["pixel_values"].to(dtype).view(args.batch, -1, batch["pixel_values"].shape[-1])
    )
    with torch.inference_mode():
        model(**batch)  # warm-up
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(args.repeats):
            out = model(**batch).embeddings
        _sync(device)
    seconds = (time.perf_counter() - t0) / args.repeats
    return {
        "page_tokens": args.page_tokens,
        "rows_per_page": int(out.shape[1]),
        "batch": args.batch,
        "pages_per_second": round(args.batch / seconds, 2),
        "peak_gb": _peak(device),
        "params_b": round(sum(p.numel() for p in model.parameters()) / 1e9, 3),
    }


def _generate_timing(model: Any, inputs: dict[str, Any], new: int, device: str) -> dict[str, float]:
    import torch

    with torch.inference_mode():
        _sync(device)
        t0 = time.perf_counter()
        model.generate(**inputs, max_new_tokens=1, min_new_tokens=1, do_sample=False)
        _sync(device)
        ttft = time.perf_counter() - t0
        t1 = time.perf_counter()
        model.generate(**inputs, max_new_tokens=new, min_new_tokens=new, do_sample=False)
        _sync(device)
        total = time.perf_counter() - t1
    return {"ttft_s": round(ttft, 3), "decode_tok_s": round((new - 1) / max(total - ttft, 1e-9), 2)}


def qwen2_5_vl(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """Qwen2.5-VL-7B (or tiny) in 16/32 bits and in NF4: memory, time to first token, decode speed."""
    import torch
    from transformers import AutoModelForImageTextToText, Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from mmrag.generate.llm import quantization_config
    from mmrag.generate.vlm import KEEP_FULL_PRECISION

    ids = _ids(args.tiny)
    geo = {"text": TINY_TEXT, "vision": TINY_VISION} if args.tiny else QWEN2_5_VL_7B
    vision = {k: v for k, v in geo["vision"].items() if k not in ("embed_dim", "mlp_ratio")}
    cfg = Qwen2_5_VLConfig(
        text_config={"model_type": "qwen2_5_vl_text", **geo["text"]},
        vision_config=vision,
        image_token_id=ids["image"],
        video_token_id=ids["video"],
        vision_start_token_id=ids["start"],
    )
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    inputs = page_inputs(args.page_tokens, args.prompt_tokens, 1, int(vision["patch_size"]), ids, device)
    out: dict[str, Any] = {"page_tokens": args.page_tokens, "prompt_tokens": args.prompt_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        model = Qwen2_5_VLForConditionalGeneration(cfg).to(device, dtype).eval()
        model.save_pretrained(tmp)
        inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
        out[str(dtype).replace("torch.", "")] = {
            "weights_gb": round(model.get_memory_footprint() / 2**30, 2),
            **_generate_timing(model, inputs, args.new_tokens, device),
            "peak_gb": _peak(device),
        }
        del model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        qcfg = quantization_config(True, device, dtype, skip_modules=KEEP_FULL_PRECISION)
        quant = AutoModelForImageTextToText.from_pretrained(
            tmp, quantization_config=qcfg, device_map={"": device}, dtype=dtype
        ).eval()
        out["nf4"] = {
            "weights_gb": round(quant.get_memory_footprint() / 2**30, 2),
            **_generate_timing(quant, inputs, args.new_tokens, device),
            "peak_gb": _peak(device),
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    import torch

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tiny", action="store_true", help="tiny configurations (CPU smoke test)")
    ap.add_argument("--only", choices=["colqwen2", "qwen2.5-vl-7b"], default=None)
    ap.add_argument("--page-tokens", type=int, default=768)
    ap.add_argument("--prompt-tokens", type=int, default=1500)
    ap.add_argument("--new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--out", type=Path, default=None, help="default: bench/results/families.json (not with --tiny)"
    )
    args = ap.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu" and not args.tiny:
        ap.error("real sizes need a CUDA device; use --tiny for the CPU smoke run")
    result: dict[str, Any] = {
        "bench": "families",
        "tiny": args.tiny,
        "machine": machine(device, ["transformers"]),
    }
    if args.only in (None, "colqwen2"):
        result["colqwen2"] = colqwen2(args, device)
    if args.only in (None, "qwen2.5-vl-7b"):
        result["qwen2.5-vl-7b"] = qwen2_5_vl(args, device)
    out = args.out or (None if args.tiny else Path("bench/results/families.json"))
    if out is not None:
        write_json(result, out)
    print(result)
    return result


if __name__ == "__main__":
    main()
