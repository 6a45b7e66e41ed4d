"""Where models run and in which precision: one `resolve_device` and one `resolve_dtype` for every model.

Encoders, generators, bridges and rerankers all read their `device`/`dtype` settings through these
two functions, so one configuration means the same device and precision whatever loads it.
`torch_dtype` turns a resolved name into the `torch.dtype` that `from_pretrained` takes.

torch is imported only inside the functions that need it (`import mmrag` stays light).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch

DTYPES = ("float32", "float16", "bfloat16")
"""The dtype names a model accepts besides `auto`."""


def resolve_device(device: str = "auto") -> str:
    """The device a model runs on.

    `auto` is `cuda` when torch sees a CUDA device, else `cpu`; any other value (`cpu`, `cuda`,
    `cuda:1`, `mps`) is returned unchanged.
    """
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(dtype: str, device: str, cpu_bf16: bool = False) -> str:
    """The precision name for weights on `device` (a resolved device, not `auto`).

    - `auto` on a CUDA device: `bfloat16` when the GPU supports it (Ampere and later), else `float16`.
    - `auto` on a CPU, with `cpu_bf16` and native bfloat16 (`cpu_has_native_bf16`): `bfloat16`.
      Text LLMs ask for it: on 2 AVX512-BF16 cores it halves Qwen2.5-Coder-0.5B's time to first
      token (5.1 -> 2.7 s for 1,050 prompt tokens) at the same greedy answers
      (`bench/results/generate_speed.json`).
    - `auto` on any other device: `float32` (emulated half precision is slow and lossy).
    - `float32`, `float16`, `bfloat16`: returned unchanged, whatever the device.

    Raises:
        MMRAGError: `dtype` is none of these.
    """
    if dtype == "auto":
        if device.startswith("cuda"):
            import torch

            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if cpu_bf16 and device == "cpu" and cpu_has_native_bf16():
            return "bfloat16"
        return "float32"
    if dtype not in DTYPES:
        raise MMRAGError(f"unknown dtype {dtype!r}; use auto, {', '.join(DTYPES)}")
    return dtype


def torch_dtype(name: str) -> torch.dtype:
    """The `torch.dtype` of a name that `resolve_dtype` returned (`"bfloat16"` -> `torch.bfloat16`)."""
    import torch

    if name not in DTYPES:
        raise MMRAGError(f"unknown dtype {name!r}; use {', '.join(DTYPES)}")
    dt: torch.dtype = getattr(torch, name)
    return dt


def cpu_has_native_bf16() -> bool:
    """True on x86 CPUs with AVX512-BF16 or AMX-BF16 (read from /proc/cpuinfo; False elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


_WARM: set[int] = set()


def warm_torch_threads() -> None:
    """Run one small parallel torch op on the calling thread (once per thread).

    Why: a streamed answer decodes on a thread of its own (`mmrag.generate.decode`). When that thread
    runs the process's first parallel torch work, decoding was several times slower on 2 CPU cores:
    16 tokens of SmolLM2 in 21.9 s, against 3.0 s after one 256x256 matmul on the calling thread. The
    torch text encoder used to do that by accident; queries through ONNX Runtime no longer load it.
    """
    import threading

    ident = threading.get_ident()
    if ident in _WARM:
        return
    import torch

    (torch.ones(256, 256) @ torch.ones(256, 256)).sum().item()
    _WARM.add(ident)
