"""A non-LLaVA VLM family (Idefics3, SmolVLM's architecture) through caption, VQA and `Pipeline.ask`.

The tiny model is random; each test compares the backend's text with the model's own greedy
computation, checks that the picture changes the output, and that 4-bit NF4 quantises the language
model only (the tower and the pixel-shuffle connector stay in full precision).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image, ImageDraw  # noqa: E402
from tiny_generators import tiny_idefics3  # noqa: E402

from mmrag.generate.vlm import VLMGenerator  # noqa: E402

QUANT = [
    pytest.param(False, id="fp32"),
    pytest.param(
        True,
        id="nf4",
        marks=pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="no bitsandbytes"),
    ),
]
RED, BLUE = Image.new("RGB", (8, 8), (220, 10, 10)), Image.new("RGB", (8, 8), (10, 10, 220))


@pytest.fixture(scope="module")
def idefics3_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_idefics3(tmp_path_factory.mktemp("vlm") / "idefics3"))


def _linear4bit_names(model: torch.nn.Module) -> set[str]:
    if importlib.util.find_spec("bitsandbytes") is None:
        return set()
    import bitsandbytes as bnb

    return {n for n, m in model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}


@pytest.mark.parametrize("quantize", QUANT)
def test_idefics3_caption_and_vqa(idefics3_dir: str, quantize: bool) -> None:
    vlm = VLMGenerator.load(idefics3_dir, device="cpu", quantize=quantize)
    quantized = _linear4bit_names(vlm.model)
    if quantize:
        # 7 Linear layers in each of the 2 Llama blocks; none in the tower, connector or head
        assert len(quantized) == 2 * 7 and all(".text_model." in f".{n}" for n in quantized)
        tower = [m for n, m in vlm.model.named_modules() if "vision_model" in n]
        assert any(isinstance(m, torch.nn.Linear) for m in tower)
        assert vlm.model.model.connector.modality_projection.proj.weight.dtype == torch.float32
    else:
        assert not quantized

    inputs = vlm.inputs("what is the color ?", [RED, BLUE])
    # 8 px image, 2 px patches: 16 patches, 2x2 pixel shuffle -> 4 tokens per image
    assert int((inputs["input_ids"] == vlm.model.config.image_token_id).sum()) == 2 * 4
    for prompt, n in (("describe this picture", 6), ("what is the color ?", 4)):  # caption, VQA
        text = vlm.generate(prompt, [RED], max_new_tokens=n)
        assert isinstance(text, str) and text == vlm.generate(prompt, [RED], max_new_tokens=n)
        streamed = "".join(vlm.generate(prompt, [RED], max_new_tokens=n, stream=True)).strip()
        assert streamed == text
        with torch.no_grad():
            ids = vlm.inputs(prompt, [RED])
            out = vlm.model.generate(**ids, do_sample=False, max_new_tokens=n, pad_token_id=0)
        new = out[0, ids["input_ids"].shape[1] :]
        assert vlm.processor.tokenizer.decode(new, skip_special_tokens=True).strip() == text
    with torch.no_grad():
        red = vlm.model(**vlm.inputs("what is the color ?", [RED])).logits[0, -1]
        blue = vlm.model(**vlm.inputs("what is the color ?", [BLUE])).logits[0, -1]
    assert torch.isfinite(red).all() and not torch.equal(red, blue)  # the picture reaches the LM


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmrag import Pipeline

    root = tmp_path_factory.mktemp("ask")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "ferry.txt").write_text("The electric ferry carried nine million passengers last year.")
    img = Image.new("RGB", (64, 64), "white")
    ImageDraw.Draw(img).rectangle((8, 8, 56, 56), fill="blue")
    img.save(corpus / "square.png")
    idx = root / "idx"
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False}) as p:
        assert p.index([corpus]).files_indexed == 2
    return idx


@pytest.mark.parametrize("quantize", QUANT)
def test_idefics3_ask_sees_retrieved_image(index_dir: Path, idefics3_dir: str, quantize: bool) -> None:
    from mmrag import Pipeline
    from mmrag.generate.loader import _GENERATORS

    overrides = {
        "generate.model": idefics3_dir,
        "generate.quantize": quantize,
        "generate.max_new_tokens": 5,
        "generate.max_images": 1,
    }
    with Pipeline.load(index_dir, **overrides) as p:
        a = p.ask("describe the picture", k=2, modality="image")
        pieces: list[str] = []
        b = p.ask("describe the picture", k=2, modality="image", on_token=pieces.append)
    gen = _GENERATORS[(idefics3_dir, "auto", quantize)]
    assert isinstance(gen.backend, VLMGenerator) and gen.reads_images
    assert bool(_linear4bit_names(gen.backend.model)) == quantize
    assert a.sources[0].hit.modality == "image" and a.sources[0].used_image
    assert a.text == b.text == "".join(pieces).strip()
