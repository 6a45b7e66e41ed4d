"""Where `ask` spends its time (disjoint stages that add up to no more than the call), and 4-bit loading
that leaves no 16-bit checkpoint pages mapped."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from tiny_generators import tiny_llama

from mmrag import Pipeline
from mmrag.answer.ask import answer
from mmrag.config import GenerateConfig
from mmrag.generate.loader import generator_info, load_generator
from mmrag.types import Hit

STAGES = {"retrieve", "rerank", "load", "pack", "generate"}
DOCS = {
    "ferry.txt": "The electric ferry carried nine million passengers across the harbour last year.",
    "ash.txt": "Volcanic ash from the northern range grounded regional flights for two weeks.",
    "tram.txt": "The new tram line doubled weekday ridership between the station and the port.",
}


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("timings")
    corpus = root / "corpus"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text)
    with Pipeline.from_config(profile="offline", index=root / "idx", **{"encoders.ocr": False}) as p:
        p.index([corpus])
    return root / "idx"


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_llama(tmp_path_factory.mktemp("llm") / "llm")


@pytest.mark.parametrize("rerank", ["none", "bi-encoder"])
def test_ask_stages_are_disjoint_and_fit_the_call(index_dir: Path, llm: Path, rerank: str) -> None:
    overrides = {"generate.model": str(llm), "generate.max_new_tokens": 4}
    with Pipeline.load(index_dir, **overrides) as p:
        p.ask("how many passengers did the ferry carry", k=2)  # loads the generator
        t = time.perf_counter()
        a = p.ask("how many passengers did the ferry carry", k=2, rerank=rerank)
        wall = time.perf_counter() - t
    assert set(a.timings) == STAGES
    assert all(v >= 0 for v in a.timings.values())
    assert sum(a.timings.values()) <= wall + 1e-3  # rounded to 0.1 ms each
    assert a.timings["load"] < 0.05  # loaded once per process, by the first question
    assert a.timings["generate"] > 0 and a.timings["retrieve"] > 0
    if rerank == "none":
        assert a.timings["rerank"] == 0
    else:  # the reranker's time is reported apart, not inside retrieve
        assert a.timings["rerank"] > 0


def test_answer_splits_rerank_out_of_retrieve(llm: Path) -> None:
    cfg = GenerateConfig(model=str(llm), device="cpu", max_new_tokens=2)
    hits = [Hit("1", 0.9, "text", "/d/ferry.txt", text=DOCS["ferry.txt"])]
    a = answer("how many passengers?", hits, cfg, t_retrieve=0.5, t_rerank=0.2)
    assert a.timings["retrieve"] == pytest.approx(0.3) and a.timings["rerank"] == pytest.approx(0.2)
    b = answer("how many passengers?", hits, cfg, t_retrieve=0.5)
    assert b.timings["retrieve"] == pytest.approx(0.5) and b.timings["rerank"] == 0


def test_generator_dtype_is_honoured(llm: Path) -> None:
    import torch

    cfg = GenerateConfig(model=str(llm), device="cpu", quantize=False, dtype="bfloat16")
    assert load_generator(cfg).backend.model.dtype == torch.bfloat16
    bf16_bytes = generator_info(cfg)["memory_bytes"]
    fp32 = GenerateConfig(model=str(llm), device="cpu", quantize=False, dtype="float32")
    assert load_generator(fp32).backend.model.dtype == torch.float32
    assert not generator_info(cfg)["loaded"]  # another dtype replaced it
    # the footprint reports what is loaded: half the bytes (the float32 rotary buffers aside)
    assert bf16_bytes < 0.55 * generator_info(fp32)["memory_bytes"]


@pytest.mark.parametrize("native", [True, False])
def test_auto_dtype_on_cpu_is_bf16_only_where_the_cpu_has_it(
    llm: Path, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    import mmrag.device
    import mmrag.generate.loader

    monkeypatch.setattr(mmrag.device, "cpu_has_native_bf16", lambda: native)
    monkeypatch.setattr(mmrag.generate.loader, "_GENERATORS", {})  # "auto" resolves anew
    auto = GenerateConfig(model=str(llm), device="cpu", quantize=False)
    want = torch.bfloat16 if native else torch.float32
    assert load_generator(auto).backend.model.dtype == want
    # encoders and 4-bit compute keep float32 on a CPU unless asked
    assert mmrag.device.resolve_dtype("auto", "cpu") == "float32"


def _mapped(path: Path) -> bool:
    return str(path) in Path("/proc/self/maps").read_text()


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="reads /proc/self/maps (Linux)")
def test_4bit_cpu_load_unmaps_the_16bit_checkpoint(llm: Path, tmp_path: Path) -> None:
    pytest.importorskip("bitsandbytes", reason="4-bit needs bitsandbytes (pip install 'mmrag[quant]')")
    import torch
    from transformers import AutoModelForCausalLM

    from mmrag.generate.llm import load_causal_lm, quantization_config

    bf16 = tmp_path / "bf16"  # a bf16 checkpoint: loading it in bf16 maps the file instead of copying
    AutoModelForCausalLM.from_pretrained(llm, dtype=torch.bfloat16).save_pretrained(bf16)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(llm).save_pretrained(bf16)
    weights = bf16 / "model.safetensors"
    qcfg = quantization_config(True, "cpu", torch.bfloat16)
    plain = AutoModelForCausalLM.from_pretrained(bf16, quantization_config=qcfg, device_map={"": "cpu"})
    if not _mapped(weights):
        pytest.skip("this transformers copies unquantised tensors on load: nothing to unmap")
    del plain
    import gc

    gc.collect()
    assert not _mapped(weights)
    before = os.environ.get("HF_DEACTIVATE_ASYNC_LOAD")
    model, _ = load_causal_lm(str(bf16), device="cpu", dtype="bfloat16", quantize=True)
    assert type(model.model.layers[0].mlp.up_proj).__name__ == "Linear4bit"
    assert not _mapped(weights)  # the embeddings and norms were copied out of the file's map
    assert os.environ.get("HF_DEACTIVATE_ASYNC_LOAD") == before  # the loading switch is put back
    ids = torch.tensor([[1, 2, 3]])
    assert model(input_ids=ids).logits.shape == (1, 3, model.config.vocab_size)
