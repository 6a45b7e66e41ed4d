"""The current VLM families (Qwen2.5-VL, Qwen3-VL, SmolVLM2, LLaVA-OneVision) as generators, on tiny
random models: image tokens per picture, greedy text and logits equal to the transformers reference,
streaming, the picture reaching the LM, and NF4 quantising the language model only."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

import tiny_vlms  # noqa: E402
from PIL import Image  # noqa: E402

from mmrag.generate.llm import quantization_config  # noqa: E402
from mmrag.generate.vlm import KEEP_FULL_PRECISION, VLMGenerator  # noqa: E402

RED, BLUE = Image.new("RGB", (16, 16), (220, 10, 10)), Image.new("RGB", (16, 16), (10, 10, 220))
PROMPT = "what is the color ?"


def _qwen_tokens(proc: Any, inputs: dict[str, Any]) -> int:
    return int(inputs["image_grid_thw"].prod(dim=1).sum()) // 4  # 2x2 patches merged into one token


FAMILIES: dict[str, tuple[Callable[[], tuple[Any, Any]], Callable[[Any, dict[str, Any]], int], str]] = {
    # builder, expected image tokens, the LM's module path (what NF4 may quantise)
    "qwen2_5_vl": (tiny_vlms.tiny_qwen2_5_vl, _qwen_tokens, "language_model"),
    "qwen3_vl": (tiny_vlms.tiny_qwen3_vl, _qwen_tokens, "language_model"),
    "smolvlm": (tiny_vlms.tiny_smolvlm, lambda p, i: 4, "text_model"),  # 4x4 patches, 2x2 pixel shuffle
    # the base view's 4x4 patches, then the one anyres tile's 4 rows of 4 patches and a newline each
    "llava_onevision": (tiny_vlms.tiny_llava_onevision, lambda p, i: 16 + 4 * (4 + 1), "language_model"),
}
NF4 = pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="no bitsandbytes")


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family(request: pytest.FixtureRequest) -> tuple[str, Any, Any]:
    model, processor = FAMILIES[request.param][0]()
    return request.param, model, processor


def _image_token_id(model: Any) -> int:
    cfg = model.config
    return int(getattr(cfg, "image_token_id", None) or cfg.image_token_index)


def test_generates_like_the_reference(family: tuple[str, Any, Any]) -> None:
    name, model, processor = family
    vlm = VLMGenerator(model, processor)
    inputs = vlm.inputs(PROMPT, [RED])
    n_tokens = FAMILIES[name][1](processor, inputs)
    assert int((inputs["input_ids"] == _image_token_id(model)).sum()) == n_tokens
    # the reference: the processor called directly on the chat template's text, then transformers
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ref = processor(images=[RED], text=text, return_tensors="pt")
    assert torch.equal(ref["input_ids"], inputs["input_ids"])
    with torch.no_grad():
        ours = model(**inputs).logits[0, -1]
        theirs = model(**ref).logits[0, -1]
        blue = model(**vlm.inputs(PROMPT, [BLUE])).logits[0, -1]
        out = model.generate(**ref, do_sample=False, max_new_tokens=2, pad_token_id=0)
    assert torch.allclose(ours, theirs, atol=1e-5)
    assert not torch.allclose(ours, blue, atol=1e-4)  # the picture reaches the LM
    want = processor.tokenizer.decode(out[0, ref["input_ids"].shape[1] :], skip_special_tokens=True).strip()
    # plain greedy on both sides (no repetition penalty), 2 tokens (too few for a repetition stop)
    text_out = vlm.generate(PROMPT, [RED], max_new_tokens=2, repetition_penalty=1.0)
    assert text_out == want
    streamed = vlm.generate(PROMPT, [RED], max_new_tokens=2, stream=True, repetition_penalty=1.0)
    assert "".join(streamed).strip() == want
    assert isinstance(vlm.generate("describe this picture", [], max_new_tokens=3), str)  # text alone


@NF4
def test_nf4_quantises_the_language_model_only(family: tuple[str, Any, Any], tmp_path: Path) -> None:
    import bitsandbytes as bnb
    from transformers import AutoModelForImageTextToText

    name, model, processor = family
    model.save_pretrained(tmp_path)
    qcfg = quantization_config(True, "cpu", torch.float32, skip_modules=KEEP_FULL_PRECISION)
    quant = AutoModelForImageTextToText.from_pretrained(
        tmp_path, quantization_config=qcfg, device_map={"": "cpu"}, dtype=torch.float32
    ).eval()
    four_bit = [n for n, m in quant.named_modules() if isinstance(m, bnb.nn.Linear4bit)]
    lm = FAMILIES[name][2]
    assert len(four_bit) == 2 * 7  # 7 Linear layers in each of the 2 decoder blocks
    assert all(f".{lm}." in f".{n}" for n in four_bit), four_bit
    full = VLMGenerator(model, processor)
    vlm = VLMGenerator(quant, processor)
    with torch.no_grad():
        a = full.model(**full.inputs(PROMPT, [RED])).logits[0, -1]
        b = vlm.model(**vlm.inputs(PROMPT, [RED])).logits[0, -1]
    # NF4 rounds the LM's weights: the logits move, but stay those of the same model
    corr = torch.corrcoef(torch.stack([a, b]))[0, 1]
    assert torch.isfinite(b).all() and corr > 0.9, float(corr)
    assert isinstance(vlm.generate(PROMPT, [RED], max_new_tokens=3), str)


@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_loading_without_torchvision_names_the_fix(tmp_path: Path) -> None:
    """A Qwen2.5-VL folder as released (a processor that has a video processor) on a machine without
    torchvision: the error says what to install instead of transformers' AttributeError."""
    import json

    from mmrag.generate.vlm import load_vlm
    from mmrag.types import MMRAGError

    model, processor = tiny_vlms.tiny_qwen2_5_vl()
    model.save_pretrained(tmp_path)
    processor.tokenizer.save_pretrained(tmp_path)
    processor.image_processor.save_pretrained(tmp_path)
    (tmp_path / "processor_config.json").write_text(json.dumps({"processor_class": "Qwen2_5_VLProcessor"}))
    with pytest.raises(MMRAGError, match=r"needs torchvision.*mmrag\[vlm\]"):
        load_vlm(str(tmp_path), device="cpu", quantize=False)
