"""The memory of `ask` for `bench/answer.py`: one fresh subprocess per model and precision.

Each child (`python bench/answer.py --memory-child SPEC`, `memory_child`) loads the index, searches
once, then answers once; it reports its resident memory before the generator loads, after the
answer and after `malloc_trim`, its peak (VmHWM), and the model's own footprint. `memory_ratios`
turns the runs into NF4-over-16-bit ratios against the target.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from checkpoints import LLM_SHAPES, ROOT, random_llava, random_llm

ANSWER = Path(__file__).with_name("answer.py")
"""The script whose `--memory-child` runs one configuration."""


def proc_status() -> dict[str, float]:
    """Resident memory of this process in MB: its peak, and now (all, anonymous, file-backed).

    The peak is Linux's VmHWM: `getrusage`'s ru_maxrss survives `execve`, so a subprocess would
    report its parent's peak (measured here: 2.7 GB for a 0.6 GB child). Elsewhere, ru_maxrss.
    """
    import resource

    out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}  # KB on Linux
    names = {"VmHWM": "peak_rss_mb", "VmRSS": "rss_mb", "RssAnon": "anon_mb", "RssFile": "file_mb"}
    status = Path("/proc/self/status")
    if status.is_file():
        for ln in status.read_text().splitlines():
            key, _, value = ln.partition(":")
            if key in names:
                out[names[key]] = int(value.split()[0]) / 1024
    return {k: round(v, 1) for k, v in out.items()}


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Load the index, search once (embedders, store), then one `ask`: what the process holds."""
    import torch

    from mmrag import Pipeline
    from mmrag.generate.llm import trim_heap
    from mmrag.generate.loader import generator_info

    cuda = spec["device"].startswith("cuda")
    overrides = {
        "generate.model": spec["model"],
        "generate.quantize": spec["quantize"],
        "generate.device": spec["device"],
        "generate.max_new_tokens": spec["tokens"],
        "generate.context_chars": spec["context_chars"],
    }
    with Pipeline.load(spec["index"], **overrides) as p:
        p.config.generate.dtype = spec["dtype"]
        p.search(spec["question"], k=spec["k"])
        before = proc_status()
        t = time.perf_counter()
        a = p.ask(spec["question"], k=spec["k"])
        wall = time.perf_counter() - t
        after = proc_status()
        info = generator_info(p.config.generate)
        trim_heap()
        trimmed = proc_status()
        row = {
            "before_generator": before,
            "after_answer": after,
            "after_trim": trimmed,
            "ask_s": round(wall, 2),
            "timings": a.timings,
            "footprint_mb": round(info["memory_bytes"] / 2**20, 1),
        }
        if cuda:
            row["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            row["cuda_after_mb"] = round(torch.cuda.memory_allocated() / 2**20, 1)
    return row


def prequantize(folder: Path, dtype: str) -> Path:
    """An NF4 checkpoint of `folder`, saved once beside it (bitsandbytes serialises 4-bit weights)."""
    from mmrag.generate.llm import load_causal_lm

    out = folder.with_name(folder.name + "-nf4")
    if not (out / "config.json").is_file():
        model, tok = load_causal_lm(str(folder), device="cpu", dtype=dtype, quantize=True)
        model.save_pretrained(out)
        tok.save_pretrained(out)
    return out


def ask_memory(index: Path, question: str, args: argparse.Namespace) -> dict[str, Any]:
    """Each model in 16-bit and in NF4 (and from a saved NF4 checkpoint with `--prequantized`)."""
    out: dict[str, Any] = {}
    dtype = args.half or "bfloat16"
    for name in args.memory_models:
        if name in LLM_SHAPES:
            model = str(random_llm(args.workdir, name))
        elif name.startswith("llava"):
            model = str(random_llava(name, args.workdir))
        else:
            model = name  # a packaged name, hub id or folder
        runs = [("16-bit", model, False), ("nf4", model, True)]
        if args.prequantized and name in LLM_SHAPES:
            runs.append(("nf4-saved", str(prequantize(Path(model), dtype)), True))
        out[name] = {}
        for label, path, quantize in runs:
            spec = {"index": str(index), "model": path, "quantize": quantize, "dtype": dtype, "k": args.k,
                    "device": args.device, "tokens": 8, "context_chars": 1500,
                    "question": question}  # fmt: skip
            cmd = [sys.executable, str(ANSWER), "--memory-child", json.dumps(spec)]
            done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            if done.returncode != 0:
                raise SystemExit(f"memory run {name}/{label} failed:\n{done.stderr[-3000:]}")
            out[name][label] = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps({name: {label: out[name][label]["after_answer"]}}), file=sys.stderr, flush=True)
    return out


def memory_ratios(memory: dict[str, Any], target: float = 0.4) -> dict[str, Any]:
    """NF4 over 16-bit for each memory measure, and whether the target ratio is met."""
    out: dict[str, Any] = {}
    for name, runs in memory.items():
        half = runs["16-bit"]
        for label in (k for k in runs if k != "16-bit"):
            q = runs[label]
            r = {
                "peak_rss": rat(q["after_answer"]["peak_rss_mb"], half["after_answer"]["peak_rss_mb"]),
                "rss_after_answer": rat(q["after_answer"]["rss_mb"], half["after_answer"]["rss_mb"]),
                "rss_after_trim": rat(q["after_trim"]["rss_mb"], half["after_trim"]["rss_mb"]),
                "model_footprint": rat(q["footprint_mb"], half["footprint_mb"]),
                "generator_added_rss": rat(added(q), added(half)),
            }
            if "cuda_peak_mb" in q:
                r["cuda_peak"] = rat(q["cuda_peak_mb"], half["cuda_peak_mb"])
            r["target_met"] = {k: v is not None and v < target for k, v in r.items()}
            out[f"{name}/{label}"] = r
    return out


def added(run: dict[str, Any]) -> float:
    """RSS the generator added: after the answer, less the pipeline's own (embedders, store)."""
    return float(run["after_answer"]["rss_mb"] - run["before_generator"]["rss_mb"])


def rat(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None
