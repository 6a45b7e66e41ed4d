"""Answer-first decoding: yes/no questions read from their wording (`mmrag.answer.forms`), and the
opening constraint (`mmrag.generate.starts`) checked against the model's own logits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_generators import tiny_llama

from mmrag.answer.forms import YES_NO_OPENINGS, answer_openings, asks_yes_no
from mmrag.generate.starts import StartWith

VOCAB = ["<unk>", "</s>", "Yes", "No", "Ins", "ufficient", " information", ".", " the", " sales", " rose"]


class WordTokenizer:
    """One token per vocabulary entry; "Insufficient information." is four tokens."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        out, rest = [], text
        while rest:
            word = max((w for w in VOCAB[2:] if rest.startswith(w)), key=len, default=None)
            if word is None:
                return [0]
            out.append(VOCAB.index(word))
            rest = rest[len(word) :]
        return out


def pick(proc: StartWith, words: list[str], scores: dict[str, float]) -> str:
    ids = torch.tensor([[VOCAB.index(w) for w in words]], dtype=torch.long)
    logits = torch.zeros(1, len(VOCAB))
    for w, v in scores.items():
        logits[0, VOCAB.index(w)] = v
    return VOCAB[int(proc(ids, logits)[0].argmax())]


@pytest.mark.parametrize(
    ("question", "yes_no"),
    [
        ("Does the Verge article say that Apple's deal is unnecessary?", True),
        ("After the report by The Age on October 22, did TechCrunch stay consistent?", True),
        ("Between the two reports, is there consistency in the focus on chargers?", True),
        ("Was PepsiCo's revenue higher in 2023?", True),
        ("Which company, reported by TechCrunch, is also mentioned by The Verge?", False),
        ("Who is the individual that, according to Fortune, was convicted?", False),
        ("Considering both articles, which artist was featured?", False),
        ("Was the performance reported before or after the November article?", False),
        ("Is the new model faster or slower?", False),
        ("What was PepsiCo's EPS in Q1 2023?", False),
    ],
)
def test_yes_no_questions_are_read_from_their_wording(question: str, yes_no: bool) -> None:
    assert asks_yes_no(question) is yes_no
    assert answer_openings(question) == (YES_NO_OPENINGS if yes_no else None)
    assert answer_openings(question, enabled=False) is None


def test_the_opening_is_the_models_pick_among_the_allowed_ones() -> None:
    proc = StartWith(WordTokenizer(), ["Yes", "No", "Insufficient information."], prompt_len=1)
    # the model prefers " the" (restating the question); among the openings it prefers "No"
    assert pick(proc, ["</s>"], {" the": 9.0, "No": 2.0, "Yes": 1.0}) == "No"
    assert pick(proc, ["</s>"], {" the": 9.0, "Yes": 3.0, "Ins": 2.0}) == "Yes"
    # a refusal, once begun, is spelled out whatever else the model prefers
    assert pick(proc, ["</s>", "Ins"], {" the": 9.0}) == "ufficient"
    assert pick(proc, ["</s>", "Ins", "ufficient", " information"], {" the": 9.0}) == "."
    # once an opening is complete the answer is free
    assert pick(proc, ["</s>", "Yes"], {" the": 9.0}) == " the"
    assert pick(proc, ["</s>", "Ins", "ufficient", " information", "."], {"</s>": 9.0}) == "</s>"


@pytest.fixture(scope="module")
def tiny_gen(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from mmrag.generate.llm import TextGenerator

    folder: Path = tiny_llama(tmp_path_factory.mktemp("starts") / "llm")
    return TextGenerator.load(str(folder), device="cpu", quantize=False)


def test_a_real_generator_opens_with_the_opening_its_logits_prefer(tiny_gen: Any) -> None:
    tok = tiny_gen.tokenizer
    openings = ["yes", "no", "insufficient information ."]
    prompt = "does the picture contain a red circle ?"
    ids = tiny_gen.encode(prompt)
    with torch.inference_mode():
        logits = tiny_gen.model(input_ids=ids).logits[0, -1]
    firsts = {o: tok.encode(o, add_special_tokens=False)[0] for o in openings}
    expected = max(openings, key=lambda o: float(logits[firsts[o]]))  # the reference: the model's own pick
    free = str(tiny_gen.generate(prompt, max_new_tokens=4, stop_on_repetition=False))
    out = str(tiny_gen.generate(prompt, max_new_tokens=8, stop_on_repetition=False, answer_starts=openings))
    assert out.startswith(expected), (out, expected)
    assert not free.startswith(tuple(openings)), "the random model would open so anyway: a weak test"
