"""Offline LLMs' speed on this machine: load time, time to first token and decode tokens/s per model
and precision, with the answers compared across precisions, in one run.

Each (model, precision) runs in a fresh process (`--one`), so memory and load time are its own:
- `load_seconds`: `load_generator` from the model cache (the converted safetensors; the `cached
  load`). With `--cold`, the packaged Qwen models' cache is moved aside first, so the first row of
  each is the cold load: joining the pip slices, checking the sha256, de-quantising the GGUF and
  writing safetensors (the cache is put back afterwards whatever happens);
- `ttft_seconds`: from the chat-templated prompt to the first new token, on a real `ask` prompt
  (three numbered FinanceBench-sized sources, about `--prompt-tokens` tokens);
- `decode_tokens_per_s`: (new tokens - 1) over the time from the first token to the last, greedy,
  `--new-tokens` tokens forced (`min_new_tokens`);
- `answers`: the greedy answers (48 tokens) to three short reading questions, so that a precision
  is compared with float32 at equal answers (`same_answers_as_float32`).

Precisions: `float32`, `bfloat16` and `nf4` (bitsandbytes 4-bit NF4 with a float32 compute dtype).

    python bench/generate_speed.py                          # both default models, all precisions
    python bench/generate_speed.py --models qwen2.5-coder-0.5b --cold
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, rss_mb, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"
PRECISIONS = ("float32", "bfloat16", "nf4")
READING = (
    (
        "Source [1]: Ana Lopez leads the battery team; Raj Patel and Mei Chen work on firmware.\n"
        "Who leads the battery team?",
        "Ana Lopez",
    ),
    (
        "Source [1]: Revenue was $4.1 billion in 2021, $4.8 billion in 2022 and $5.6 billion in 2023.\n"
        "What was revenue in 2022?",
        "4.8",
    ),
    (
        "Source [1]: The plant in Lyon closed in March 2020; the plant in Turin opened in May 2021.\n"
        "When did the Turin plant open?",
        "May 2021",
    ),
)


def one(model: str, precision: str, prompt_tokens: int, new_tokens: int) -> dict[str, Any]:
    """Load `model` at `precision` in this process and time it (the child's work)."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    from mmrag.config import GenerateConfig
    from mmrag.generate.loader import load_generator

    cfg = GenerateConfig(
        model=model,
        device="cpu",
        dtype="float32" if precision == "nf4" else precision,
        quantize=precision == "nf4",
    )
    t0 = time.perf_counter()
    gen = load_generator(cfg)
    load = time.perf_counter() - t0
    backend: Any = gen.backend
    filler = " ".join(
        f"In fiscal {2000 + i % 24} the segment's revenue was ${i}.{i % 10} million." for i in range(400)
    )
    ids = backend.tokenizer(filler, add_special_tokens=False)["input_ids"][:prompt_tokens]
    context = backend.tokenizer.decode(ids)
    prompt = f"Sources:\n[1] {context}\n\nQuestion: What was the segment's revenue in fiscal 2013?"
    inputs = backend.encode(prompt)

    class Stamp(StoppingCriteria):
        def __init__(self) -> None:
            self.times: list[float] = []

        def __call__(self, input_ids: Any, scores: Any, **kw: Any) -> Any:
            self.times.append(time.perf_counter())
            return torch.zeros(input_ids.shape[0], dtype=torch.bool)

    runs = []
    for _ in range(2):  # the first call warms the kernels; the second is reported
        stamp = Stamp()
        t1 = time.perf_counter()
        with torch.inference_mode():
            backend.model.generate(
                input_ids=inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                stopping_criteria=StoppingCriteriaList([stamp]),
                pad_token_id=backend.tokenizer.pad_token_id,
            )
        runs.append((stamp.times[0] - t1, (len(stamp.times) - 1) / (stamp.times[-1] - stamp.times[0])))
    answers = [str(gen.generate(q, max_new_tokens=48)) for q, _ in READING]
    return {
        "load_seconds": round(load, 2),
        "prompt_tokens": int(inputs.shape[1]),
        "new_tokens": new_tokens,
        "ttft_seconds": round(runs[-1][0], 3),
        "decode_tokens_per_s": round(runs[-1][1], 2),
        "answers": answers,
        "reading_correct": sum(
            want.lower() in a.lower() for a, (_, want) in zip(answers, READING, strict=True)
        ),
        "peak_rss_mb": round(rss_mb("VmHWM")),
    }


def child(model: str, precision: str, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--one", model, precision]
    cmd += ["--prompt-tokens", str(args.prompt_tokens), "--new-tokens", str(args.new_tokens)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed"}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_seconds"] = round(time.perf_counter() - t0, 1)
    return dict(out)


def aside(model: str) -> list[tuple[Path, Path]]:
    """Move a packaged model's cache (the joined file's folder, the converted folder) aside."""
    from mmrag.generate.llm import converted_folder
    from mmrag.registry import get_model

    desc = get_model(model)
    if desc is None or desc.parts is None:
        return []
    moved = []
    for folder in (desc.assembled_dir(), converted_folder(desc)):
        if folder is not None and folder.exists():
            spare = folder.with_name(folder.name + ".aside")
            shutil.move(str(folder), str(spare))
            moved.append((folder, spare))
    return moved


def put_back(moved: list[tuple[Path, Path]]) -> None:
    """Keep what the cold run rebuilt; restore what it did not."""
    for folder, spare in moved:
        if folder.exists():
            shutil.rmtree(spare)
        else:
            shutil.move(str(spare), str(folder))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--precisions", default=",".join(PRECISIONS))
    ap.add_argument("--prompt-tokens", type=int, default=1000)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--cold", action="store_true", help="first load of each packaged model from its slices")
    ap.add_argument("--one", nargs=2, metavar=("MODEL", "PRECISION"), help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS / "generate_speed.json")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one(*args.one, args.prompt_tokens, args.new_tokens)))
        return
    result: dict[str, Any] = {
        "bench": "generate_speed",
        "machine": machine(device="cpu", libs=["transformers", "bitsandbytes"]),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "models": {},
    }
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        rows: dict[str, Any] = {}
        if args.cold and (moved := aside(model)):
            try:
                rows["cold (float32)"] = child(model, "float32", args)
            finally:
                put_back(moved)
        for p in args.precisions.split(","):
            rows[p] = child(model, p, args)
            print(model, p, {k: v for k, v in rows[p].items() if k != "answers"}, flush=True)
        base = rows.get("float32", {}).get("answers")
        for r in rows.values():
            if base and "answers" in r:
                r["same_answers_as_float32"] = sum(a == b for a, b in zip(r["answers"], base, strict=True))
        result["models"][model] = rows
    write_json(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
