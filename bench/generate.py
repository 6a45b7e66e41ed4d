"""Generation speed: time to first token and decode tokens/s, 4-bit NF4 against 16-bit, in one run.

Per precision (NF4 with a 16-bit compute dtype, and plain 16-bit), batch size (1, 8) and images per
prompt (0, 1, 4) it times greedy `generate` calls of a fixed number of new tokens
(`min_new_tokens = max_new_tokens`, so random weights decode as long as real ones). A stopping
criterion stamps every step (after a CUDA sync): TTFT runs from building the inputs (tokenising,
the vision tower) to the first token; decode tokens/s is batch x (tokens - 1) over the time from
the first token to the last. Then, at batch 1 without images, the decode with a static KV cache,
with and without torch.compile (transformers' own compile of the decode step), against the
default dynamic cache.

Architectures (`--arch`):
- `bridge`: the trained offline bridge, EfficientNet-Lite0 + projector + SmolLM2-135M (real weights;
  4 visual tokens an image). The default on CPU.
- `bridge-1.7b`: EfficientNet-Lite0 + an untrained projector + a random-init LLM of SmolLM2-1.7B's shape.
- `llava-1.5-7b`: random-init LLaVA-1.5-7B (CLIP ViT-L/14-336, 576 tokens an image, Vicuna-7B).
  The default on CUDA.
- `llava-tiny`: a tiny LLaVA, for plumbing checks.

Random checkpoints are written once to `--workdir` in bf16 safetensors (bitsandbytes quantises
while loading a checkpoint). `bench/answer.py` runs this with the ask latency and memory; alone:

    python bench/generate.py                                      # CPU, the bridge
    python bench/generate.py --device cuda                        # GPU, LLaVA-1.5-7B shapes
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from checkpoints import ROOT, random_llava, random_llm  # noqa: E402  (puts the checkout on the path)
from common import machine, write_json  # noqa: E402

BRIDGE = Path.home() / ".cache" / "mmrag" / "bridges" / "efficientnet-smollm2"


# --- what is timed ---------------------------------------------------------------------------------


@dataclass
class Subject:
    """A loaded generator: the module whose `generate` runs, and how to build a batch for it."""

    lm: Any
    make: Callable[[int, int], dict[str, Any]]
    """(batch, images per prompt) -> `generate` keyword arguments (tower run included)."""
    footprint: int
    tokens_per_image: int


def sample_images(n: int = 4) -> list[Any]:
    from PIL import Image, ImageDraw

    images = []
    for i in range(n):
        img = Image.new("RGB", (336, 336), (40 * i, 90, 200 - 40 * i))
        ImageDraw.Draw(img).ellipse((40 + 20 * i, 60, 260, 280 - 20 * i), fill=(230, 200 - 30 * i, 40))
        images.append(img)
    return images


def question(tokenizer: Any, tokens: int) -> str:
    """A question about `tokens` tokens long (the retrieved context of a RAG prompt stands in)."""
    from tiny_generators import WORDS

    words: list[str] = []
    while len(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"]) < tokens:
        words += WORDS[len(words) % len(WORDS) : len(words) % len(WORDS) + 8]
    return " ".join(words) + " what is in the picture?"


def load_subject(arch: str, quantize: bool, device: str, dtype: str, workdir: Path, tokens: int) -> Subject:
    import torch

    images = sample_images()
    if arch.startswith("bridge"):
        from mmrag.generate.bridge import BridgeConfig, BridgeModel

        if arch == "bridge":
            bridge = BridgeModel.load(BRIDGE, device=device, dtype=dtype, quantize=quantize)
        else:
            cfg = BridgeConfig(llm=str(random_llm(workdir)))
            torch.manual_seed(0)
            bridge = BridgeModel.from_config(cfg, device=device, dtype=dtype, quantize=quantize)
        text = question(bridge.tokenizer, tokens)

        def make_bridge(batch: int, n: int) -> dict[str, Any]:
            prompt, _ = bridge.chat_parts(text, n)
            row = bridge.tokenizer(prompt, add_special_tokens=False)["input_ids"]
            ids = torch.tensor([row] * batch, device=bridge.device)
            feats = bridge.vision_features(images[:n] * batch) if n else None
            with torch.inference_mode():
                embeds = bridge.embed(ids, vision_features=feats)
            return {"inputs_embeds": embeds, "attention_mask": torch.ones_like(ids)}

        from mmrag.generate.loader import memory_footprint

        return Subject(bridge.llm, make_bridge, memory_footprint(bridge), bridge.config.n_visual_tokens)
    from mmrag.generate.vlm import VLMGenerator

    vlm = VLMGenerator.load(str(random_llava(arch, workdir)), device=device, dtype=dtype, quantize=quantize)
    proc = vlm.processor
    text = question(proc.tokenizer, tokens)
    wdtype = next(p.dtype for p in vlm.model.parameters() if p.is_floating_point())

    def make_llava(batch: int, n: int) -> dict[str, Any]:
        content = [{"type": "image"}] * n + [{"type": "text", "text": text}]
        chat = proc.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
        )
        enc = proc(images=images[:n] * batch or None, text=[chat] * batch, return_tensors="pt")
        return {
            k: v.to(vlm.model.device, wdtype if v.is_floating_point() else v.dtype) for k, v in enc.items()
        }

    vision = vlm.model.config.vision_config
    per_image = (vision.image_size // vision.patch_size) ** 2
    return Subject(vlm.model, make_llava, int(vlm.model.get_memory_footprint()), per_image)


def timed(subject: Subject, batch: int, n_images: int, new_tokens: int, **gen_kw: Any) -> dict[str, Any]:
    """One generate call: TTFT, decode tokens/s (all sequences together) and the prompt length."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    cuda = subject.lm.device.type == "cuda"

    class Clock(StoppingCriteria):
        def __init__(self) -> None:
            self.stamps: list[float] = []

        def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
            if cuda:
                torch.cuda.synchronize()
            self.stamps.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)

    clock = Clock()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    inputs = subject.make(batch, n_images)
    with torch.inference_mode():
        subject.lm.generate(**inputs, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False,
                            stopping_criteria=StoppingCriteriaList([clock]), **gen_kw)  # fmt: skip
    s = clock.stamps
    key = "inputs_embeds" if "inputs_embeds" in inputs else "input_ids"
    decode = s[-1] - s[0]
    return {
        "ttft_s": s[0] - t0,
        "decode_tok_s": batch * (len(s) - 1) / decode if decode > 0 else None,
        "prompt_tokens": int(inputs[key].shape[1]),
        "new_tokens": len(s),
    }


def median_run(subject: Subject, batch: int, n: int, tokens: int, repeats: int, **kw: Any) -> dict[str, Any]:
    """A warm-up call, then the median TTFT and decode rate of `repeats` calls."""
    t = time.perf_counter()
    timed(subject, batch, n, tokens, **kw)
    warmup = time.perf_counter() - t
    runs = [timed(subject, batch, n, tokens, **kw) for _ in range(repeats)]
    rates = [r["decode_tok_s"] for r in runs if r["decode_tok_s"]]
    return {
        "batch": batch, "images": n, "prompt_tokens": runs[0]["prompt_tokens"], "new_tokens": tokens,
        "ttft_s": round(statistics.median(r["ttft_s"] for r in runs), 4),
        "decode_tok_s": round(statistics.median(rates), 2) if rates else None,
        "warmup_s": round(warmup, 2),
    }  # fmt: skip


def cache_modes(subject: Subject, tokens: int, repeats: int, device: str) -> list[dict[str, Any]]:
    """Decode at batch 1, no image: dynamic cache, static cache, static cache + torch.compile."""
    from transformers import CompileConfig

    compile_cfg = CompileConfig()
    # transformers compiles the decode step by itself only on CUDA/XPU; this flag opts other devices in.
    compile_cfg._compile_all_devices = not device.startswith("cuda")
    modes: list[tuple[str, dict[str, Any]]] = [
        ("dynamic", {"disable_compile": True}),
        ("static", {"cache_implementation": "static", "disable_compile": True}),
        ("static+compile", {"cache_implementation": "static", "compile_config": compile_cfg}),
    ]
    quantizer = getattr(subject.lm, "hf_quantizer", None)
    rows: list[dict[str, Any]] = []
    for name, kw in modes:
        if name == "static+compile" and quantizer is not None and not quantizer.is_compileable:
            # Not run: transformers would silently decode uncompiled. Compiling the forward by hand
            # instead recompiled at every step here (0.4 tokens/s, 46 s to the first token).
            note = f"transformers does not compile {type(quantizer).__name__} models (is_compileable=False)"
            rows.append({"mode": name, "skipped": note})
            continue
        try:
            row = {"mode": name, **median_run(subject, 1, 0, tokens, repeats, **kw)}
        except Exception as e:  # inductor needs a C compiler; report why instead of a number
            rows.append({"mode": name, "error": f"{type(e).__name__}: {str(e)[:300]}"})
            continue
        if name == "static+compile":
            row["compiled"] = hasattr(subject.lm, "_compiled_call")
            row["note"] = "warmup_s includes the compile"
        rows.append(row)
    return rows


def run_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Every precision x batch x images cell, then the cache/compile modes, one precision loaded at a time."""
    import gc

    import torch

    from mmrag.generate.llm import warm_cpu_4bit

    cuda = args.device.startswith("cuda")
    half = args.half or "bfloat16"
    out: dict[str, Any] = {"arch": args.arch, "new_tokens": args.new_tokens, "rows": [], "cache_modes": {}}
    for quantize in (True, False):
        precision = "nf4" if quantize else {"bfloat16": "bf16", "float16": "fp16"}.get(half, half)
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter()
        subject = load_subject(args.arch, quantize, args.device, half, args.workdir, args.prompt_tokens)
        warm_cpu_4bit(subject.lm)  # what `ask` does after loading (bitsandbytes' CPU repacking)
        load = {"precision": precision, "load_s": round(time.perf_counter() - t, 2),
                "footprint_mb": round(subject.footprint / 2**20, 1)}  # fmt: skip
        out.setdefault("loads", []).append(load)
        for batch in args.batches:
            for n in args.images:
                row = {"precision": precision, **median_run(subject, batch, n, args.new_tokens, args.repeats)}
                row["visual_tokens"] = n * subject.tokens_per_image
                out["rows"].append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
        if args.compile:
            modes = cache_modes(subject, args.compile_tokens, args.repeats, args.device)
            out["cache_modes"][precision] = modes
            print(json.dumps({precision: modes}), file=sys.stderr, flush=True)
        if cuda:
            load["gpu_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        del subject
        gc.collect()
    return out


def speed_ratios(speed: dict[str, Any]) -> dict[str, Any]:
    """NF4 over 16-bit, cell by cell (TTFT and decode rate), and each cache mode over the dynamic one."""
    rows = {(r["precision"], r["batch"], r["images"]): r for r in speed["rows"]}
    half = next(p for p, _, _ in rows if p != "nf4")
    cells = {}
    for (p, b, n), r in rows.items():
        base = rows.get((half, b, n))
        if p == "nf4" and base:
            cells[f"batch{b}_img{n}"] = {
                "ttft": ratio(r["ttft_s"], base["ttft_s"]),
                "decode_tok_s": ratio(r["decode_tok_s"], base["decode_tok_s"]),
            }
    modes = {}
    for p, rs in speed["cache_modes"].items():
        by = {r["mode"]: r.get("decode_tok_s") for r in rs}
        modes[p] = {m: ratio(by.get(m), by.get("dynamic")) for m in ("static", "static+compile")}
    return {"nf4_over_16bit": cells, f"decode_over_dynamic_cache_{half}": modes.get(half), "all_modes": modes}


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def add_speed_args(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--arch", default=None, choices=["bridge", "bridge-1.7b", "llava-1.5-7b", "llava-tiny"],
                    help="default: bridge on CPU, llava-1.5-7b on CUDA")  # fmt: skip
    ap.add_argument("--half", default=None, choices=["bfloat16", "float16"], help="16-bit dtype (bfloat16)")
    ap.add_argument("--batches", type=lambda s: [int(x) for x in s.split(",")], default=[1, 8])
    ap.add_argument("--images", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1, 4])
    ap.add_argument("--prompt-tokens", type=int, default=128, help="text tokens of each prompt")
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=2, help="timed calls per cell after a warm-up (median)")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="skip static cache/compile")
    ap.add_argument("--compile-tokens", type=int, default=64, help="new tokens in the cache/compile runs")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/mmrag-bench"), help="random checkpoints")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_speed_args(ap)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "generate.json")
    args = ap.parse_args()
    args.arch = args.arch or ("llava-1.5-7b" if args.device.startswith("cuda") else "bridge")
    result = {
        "machine": machine(args.device, libs=("transformers", "bitsandbytes")),
        "weights": "real" if args.arch == "bridge" else "random",
    }
    result["speed"] = run_speed(args)
    result["ratios"] = speed_ratios(result["speed"])
    write_json(result, args.out)
    print(json.dumps(result["ratios"], indent=2))


if __name__ == "__main__":
    main()
