"""LLaVA stage 2: LoRA adapters on the bridge's LM train with the projector, save and load with the bridge."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("peft", reason="LoRA needs peft (pip install -e '.[train]' or '.[dev]')")

from PIL import Image  # noqa: E402
from tiny_generators import tiny_clip_vision, tiny_llama  # noqa: E402

from mmrag.generate.bridge import BridgeConfig, BridgeModel  # noqa: E402
from mmrag.train.projector import TrainConfig, _collate, encode_pair, train_projector  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402

COLOURS = [
    ("red", (220, 20, 20)),
    ("blue", (20, 20, 220)),
    ("green", (20, 200, 20)),
    ("yellow", (230, 230, 0)),
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BridgeConfig]:
    root = tmp_path_factory.mktemp("lora")
    lines = []
    for i, (colour, rgb) in enumerate(COLOURS * 2):
        Image.new("RGB", (8, 8), rgb).save(root / f"{i}.png")
        lines.append({"image": f"{i}.png", "question": "what is the color ?", "answer": colour})
    (root / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    cfg = BridgeConfig(
        vision=str(tiny_clip_vision(root / "clip")),
        llm=str(tiny_llama(root / "lm")),
        vision_feature="grid",
        n_visual_tokens=4,
        projector_hidden=16,
    )
    return root, cfg


def _digest(folder: str) -> str:
    return hashlib.sha256((Path(folder) / "model.safetensors").read_bytes()).hexdigest()


def _loss(bridge: BridgeModel, root: Path) -> float:
    """Mean answer loss over the 8 training pairs, computed from images (no feature cache)."""
    from mmrag.train.data import jsonl_pairs

    pairs = jsonl_pairs(root / "train.jsonl")
    batch = _collate([encode_pair(bridge, p) for p in pairs], int(bridge.tokenizer.pad_token_id or 0))
    pixels = bridge.tower.preprocess([Image.open(p.image) for p in pairs])
    with torch.no_grad():
        return float(bridge(**batch, pixel_values=pixels).loss)


def test_add_lora_trains_only_adapters_and_projector(setup: tuple[Path, BridgeConfig]) -> None:
    _, cfg = setup
    bridge = BridgeModel.from_config(cfg, device="cpu", quantize=False)
    bridge.add_lora(r=4, alpha=8, targets=["q_proj", "v_proj"])
    trainable = {n for n, p in bridge.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("projector.") or ".lora_" in n for n in trainable)
    # 2 layers x (q, v) x (A, B) adapters, plus the projector's 2 weights and 2 biases
    assert sum(".lora_" in n for n in trainable) == 2 * 2 * 2 and len(trainable) == 8 + 4
    assert bridge.has_lora


def test_lora_stage2_train_save_load(
    setup: tuple[Path, BridgeConfig], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, cfg = setup
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    llm_digest = _digest(cfg.llm)
    torch.manual_seed(0)  # train_projector seeds the same way before building the bridge
    before = BridgeModel.from_config(cfg, device="cpu", quantize=False)
    loss_before = _loss(before, root)
    out = tmp_path / "bridge"
    train = TrainConfig(
        bridge=cfg,
        data=str(root / "train.jsonl"),
        out=str(out),
        max_pairs=8,
        batch_size=2,
        lr=2e-2,
        warmup_steps=1,
        device="cpu",
        lora=True,
        lora_r=4,
        lora_alpha=8,
    )
    metrics = train_projector(train, show_progress=False)
    assert metrics["lora"] and metrics["steps"] == 4
    assert sorted(p.name for p in (out / "adapter").iterdir()) == [
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    from safetensors.torch import load_file

    saved = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert saved and all(".lora_" in k for k in saved)  # the base LM is not copied into the bridge
    assert _digest(cfg.llm) == llm_digest

    trained = BridgeModel.load(out, device="cpu", quantize=False)
    assert trained.has_lora and not any(p.requires_grad for p in trained.llm.parameters())  # inference only
    assert _loss(trained, root) < loss_before
    # lora_B starts at zero: non-zero now means the adapters trained
    assert any(float(v.abs().sum()) > 0 for k, v in saved.items() if "lora_B" in k)
    # base weights untouched: with the adapters disabled, the LM is the original one
    ids = torch.tensor([trained._ids(trained.chat_parts("what is the color ?", 0)[0])])
    with torch.no_grad():
        reference = before.llm(input_ids=ids).logits
    with torch.no_grad(), trained.llm.disable_adapter():
        torch.testing.assert_close(trained.llm(input_ids=ids).logits, reference)
    with torch.no_grad():
        adapted = trained.llm(input_ids=ids).logits
    assert not torch.allclose(adapted, reference)

    # round trip: save the loaded bridge again, load it, identical logits on an image prompt
    trained.save(tmp_path / "again")
    again = BridgeModel.load(tmp_path / "again", device="cpu", quantize=False)
    prompt = torch.tensor([trained._ids(trained.chat_parts("what is the color ?", 1)[0])])
    pixels = trained.tower.preprocess([Image.open(root / "0.png")])
    with torch.no_grad():
        torch.testing.assert_close(
            again(prompt, pixel_values=pixels).logits,
            trained(prompt, pixel_values=pixels).logits,
            rtol=0,
            atol=0,
        )
    answer = trained.generate("what is the color ?", [Image.open(root / "0.png")], max_new_tokens=3)
    assert answer == again.generate("what is the color ?", [Image.open(root / "0.png")], max_new_tokens=3)


def test_bad_adapter_folder_is_a_clear_error(setup: tuple[Path, BridgeConfig], tmp_path: Path) -> None:
    _, cfg = setup
    BridgeModel.from_config(cfg, device="cpu", quantize=False).save(tmp_path / "b")
    (tmp_path / "b" / "adapter").mkdir()
    with pytest.raises(MMRAGError, match="cannot load LoRA adapters"):
        BridgeModel.load(tmp_path / "b", device="cpu", quantize=False)
