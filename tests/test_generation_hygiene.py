"""Generation hygiene: a tiny model built to loop stops at the first repeat, streamed or not, in every path.

The looping model is a 2-layer Llama whose attention and MLP outputs are zeroed, so each next token
depends on the current one only, and whose output layer maps `paris -> is -> the -> capital -> of
-> france -> . -> paris`: greedy decoding writes "paris is the capital of france ." forever.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from tiny_generators import tiny_llama

from mmrag.config import GenerateConfig
from mmrag.generate.stopping import (
    StopRules,
    clean,
    find_cut,
    has_repetition,
    stream_clean,
    template_stops,
)
from mmrag.types import Hit

CYCLE = ["paris", "is", "the", "capital", "of", "france", "."]
ONCE = "paris is the capital of france ."


def looping_llama(folder: Path) -> Path:
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM

    src = tiny_llama(folder)
    model = LlamaForCausalLM.from_pretrained(src)
    tok = AutoTokenizer.from_pretrained(src)
    ids = [tok.convert_tokens_to_ids(w) for w in CYCLE]
    dim = model.config.hidden_size
    with torch.no_grad():
        for layer in model.model.layers:  # the residual stream carries the current token's embedding
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        basis = torch.eye(dim)
        emb = model.model.embed_tokens.weight
        emb[:] = basis[len(CYCLE)]  # every other token (the prompt's last) leads to "paris"
        head = model.lm_head.weight
        head.zero_()
        head[ids[0]] = 10 * basis[len(CYCLE)]
        for i, tid in enumerate(ids):
            emb[tid] = basis[i]
            head[ids[(i + 1) % len(ids)]] += 10 * basis[i]
    model.save_pretrained(src)
    return src


@pytest.fixture(scope="module")
def loop_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return looping_llama(tmp_path_factory.mktemp("loop") / "llm")


@pytest.fixture(scope="module")
def text_gen(loop_model: Path) -> Any:
    from mmrag.generate.llm import TextGenerator

    return TextGenerator.load(str(loop_model), device="cpu", quantize=False)


class Counter:
    """A logits processor that counts decoding steps (generated tokens)."""

    def __init__(self) -> None:
        self.steps = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.steps += 1
        return scores


def test_tiny_model_loops_without_stopping_and_stops_with_it(text_gen: Any) -> None:
    off, on = Counter(), Counter()
    looped = text_gen.generate(
        "what is the capital of france ?", max_new_tokens=40, stop_on_repetition=False, logits_processor=[off]
    )
    assert looped.count(ONCE) >= 4 and has_repetition(looped)  # the model really loops
    stopped = text_gen.generate("what is the capital of france ?", max_new_tokens=40, logits_processor=[on])
    assert stopped == ONCE and not has_repetition(stopped)
    assert on.steps < off.steps == 40  # generation itself ended early, not only the text


def test_streaming_stops_like_non_streaming(text_gen: Any) -> None:
    for stop in (True, False):
        kw = {"max_new_tokens": 30, "stop_on_repetition": stop}
        whole = text_gen.generate("what is the capital of france ?", **kw)
        pieces = list(text_gen.generate("what is the capital of france ?", stream=True, **kw))
        assert "".join(pieces).strip() == whole
        assert len(pieces) >= 2  # still streamed in pieces
    assert whole != ONCE  # stop=False: the loop is kept


def test_ask_and_llama_index_paths_stop(loop_model: Path) -> None:
    from mmrag.answer.ask import answer

    cfg = GenerateConfig(model=str(loop_model), device="cpu", quantize=False, max_new_tokens=40)
    hits = [Hit("1", 0.9, "text", "/d/paris.txt", text="paris is the capital of france")]
    streamed: list[str] = []
    a = answer("what is the capital of france ?", hits, cfg)
    b = answer("what is the capital of france ?", hits, cfg, on_token=streamed.append)
    assert a.text == b.text == "".join(streamed).strip() == ONCE
    cfg.stop_on_repetition = False
    assert answer("what is the capital of france ?", hits, cfg).text.count(ONCE) >= 4

    pytest.importorskip("llama_index.core", reason="the connector needs llama-index-core")
    from mmrag.connectors.llama_index import MMRAGLLM

    llm = MMRAGLLM(model=str(loop_model), device="cpu", quantize=False, max_new_tokens=40)
    assert llm.complete("what is the capital of france ?").text == ONCE
    deltas = [r.delta or "" for r in llm.stream_complete("what is the capital of france ?")]
    assert "".join(deltas).strip() == ONCE


def test_rules_cut_sentences_ngrams_and_stop_strings() -> None:
    rules = StopRules(repeat_ngram=8, stop_strings=("User:",))
    text = "Revenue grew 14.3% [1]. Margins held. Revenue grew 14.3% [2]. More."
    assert clean(text, rules) == "Revenue grew 14.3% [1]. Margins held."  # labels do not hide a repeat
    assert clean("Yes. Yes. Done.", rules) == "Yes. Yes. Done."  # short sentences may repeat
    # a label after the full stop belongs to the sentence before it: the cut keeps it
    once = "PepsiCo's organic revenue grew 14.3% in the quarter. [1]"
    assert clean(f"{once} {once}", rules) == once
    assert clean(f"{once}\n{once}", rules) == once
    assert clean("a b c d e f g h i a b c d e f g h i", rules) == "a b c d e f g h i"
    assert clean("The answer is 5.\nUser: and now?", rules) == "The answer is 5."
    # mid-generation, the sentence still being written is not compared yet
    assert find_cut("It rose 5% in 2023. It rose 5% in 2023", rules, final=False) is None
    assert find_cut("It rose 5% in 2023. It rose 5% in 2023", rules, final=True) == 20
    assert clean("No repeat here.", StopRules(repeat_ngram=0, repeat_sentence=False)) == "No repeat here."


def test_stream_clean_joins_to_clean_on_random_texts() -> None:
    rnd = random.Random(0)
    vocab = ["the", "revenue", "grew", "14.3%.", "[1]", "in", "Q1", "2023.", "User:", "\n", "Use", "b."]
    for _ in range(300):
        text = " ".join(rnd.choice(vocab) for _ in range(rnd.randint(1, 50)))
        rules = StopRules(repeat_ngram=rnd.choice([0, 3, 8]), stop_strings=("User:",))
        cuts = sorted(rnd.sample(range(len(text) + 1), min(len(text), rnd.randint(0, 12))))
        pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        assert "".join(stream_clean(pieces, rules)).strip() == clean(text, rules).strip(), text


def test_stop_tokens_and_strings_come_from_the_chat_template(text_gen: Any) -> None:
    tok = text_gen.tokenizer
    ids, strings = template_stops(tok)
    assert set(ids) == {tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|im_start|>")}
    assert strings == ()  # ChatML marks turns with special tokens only
    plain = type(tok).from_pretrained(tok.name_or_path)
    plain.chat_template = (
        "{% for m in messages %}{{ m['role'] | capitalize }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}Assistant:{% endif %}"
    )
    assert template_stops(plain)[1] == ("User:",)
