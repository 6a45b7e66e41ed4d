"""Label-constrained decoding (`mmrag.generate.labels`) and the answer-quality suite's scoring."""

from __future__ import annotations

from typing import Any

import torch

from mmrag.generate.labels import LabelAfterSentence

VOCAB = [
    "<unk>",
    "</s>",
    " [",
    "]",
    "1",
    "2",
    "3",
    "Sales",
    " rose",
    " 14",
    ".",
    " More",
    " Insufficient",
    " information",
    "0",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    " vs",
    "[",
    "\n\n",
]


class WordTokenizer:
    """Just enough of a tokenizer: one token per vocabulary entry, decoding by concatenation."""

    unk_token_id = 0
    eos_token_id = 1

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [VOCAB.index(text)] if text in VOCAB else [0, 0]

    def decode(self, ids: Any, skip_special_tokens: bool = False) -> str:
        return "".join(VOCAB[int(i)] for i in ids if not (skip_special_tokens and int(i) in (0, 1)))


def step(
    proc: LabelAfterSentence, words: list[str], prefer: str, boost: dict[str, float] | None = None
) -> str:
    """The token greedy decoding picks after `words`, when the model itself prefers `prefer`."""
    ids = torch.tensor([[VOCAB.index(w) for w in words]])
    scores = torch.zeros(1, len(VOCAB))
    scores[0, VOCAB.index(prefer)] = 5.0
    for w, v in (boost or {}).items():
        scores[0, VOCAB.index(w)] = v
    return VOCAB[int(proc(ids, scores)[0].argmax())]


def test_a_sentence_without_a_label_gets_one_the_model_picks() -> None:
    proc = LabelAfterSentence(WordTokenizer(), n_labels=2)
    assert proc.enabled
    sent = ["Sales", " rose", " 14", "."]
    assert step(proc, sent, prefer=" More") == " ["  # the sentence ended without a label
    # among the existing labels the model's own preference wins; label 3 does not exist
    assert step(proc, [*sent, " ["], prefer="3", boost={"2": 2.0, "1": 1.0}) == "2"
    assert step(proc, [*sent, " [", "2"], prefer=" More") == "]"
    assert step(proc, [*sent, " [", "2", "]"], prefer=" More") == " More"  # free again
    assert step(proc, ["Sales", " vs", "."], prefer=" More") == " More"  # an abbreviation ends no sentence
    assert step(proc, sent, prefer="4") == "4"  # "14." then a digit: a decimal point, not a sentence end
    assert step(proc, ["Sales", " rose", " 14"], prefer="</s>") == " ["  # the answer may not end unlabelled
    assert step(proc, [" Insufficient", " information", "."], prefer="</s>") == "</s>"  # refusals need none
    assert step(proc, ["Sales", " [", "1", "]", " rose", "."], prefer="</s>") == "</s>"  # already labelled


def test_the_chat_templates_end_of_turn_counts_as_an_end() -> None:
    ended_by_more = LabelAfterSentence(WordTokenizer(), n_labels=2, end_ids=[VOCAB.index(" More")])
    assert step(ended_by_more, ["Sales", " rose", " 14"], prefer=" More") == " ["
    assert (
        step(LabelAfterSentence(WordTokenizer(), n_labels=2), ["Sales", " rose", " 14"], prefer=" More")
        == " More"
    )


def test_an_answer_reaching_the_token_limit_mid_sentence_gets_its_label() -> None:
    """A 40-query run had an answer cut by the limit after "... are linked to", with no label."""
    proc = LabelAfterSentence(WordTokenizer(), n_labels=2, max_new_tokens=6)
    assert step(proc, ["Sales", " rose"], prefer=" 14") == " 14"  # room left: the model goes on
    assert step(proc, ["Sales", " rose", " 14"], prefer=" More") == " ["  # 3 tokens left: label now
    assert step(proc, ["Sales", " rose", " 14", " [", "1"], prefer=" More") == "]"
    done = ["Sales", " [", "1", "]", " rose"]
    assert step(proc, done, prefer=" More") == " More"  # already labelled


def test_a_line_break_ends_a_claim() -> None:
    """Over the PepsiCo PDF the model wrote "... was 14.3%", a blank line and the same line again: the
    repetition stop cut the copy and left the first line without a label."""
    proc = LabelAfterSentence(WordTokenizer(), n_labels=2)
    assert step(proc, ["Sales", " rose", " 14"], prefer="\n\n") == " ["
    assert step(proc, ["Sales", " rose", " 14", " [", "1", "]"], prefer="\n\n") == "\n\n"


def test_labels_need_single_tokens() -> None:
    proc = LabelAfterSentence(WordTokenizer(), n_labels=12)  # "10".."12" are not single tokens here
    assert len(proc.labels) == 9


def test_without_sources_no_label_can_be_written() -> None:
    """With no gold evidence the model once answered "... is [1]." although there was no source 1."""
    proc = LabelAfterSentence(WordTokenizer(), n_labels=0)
    assert proc.enabled and not proc.labels
    assert step(proc, ["Sales", " ["], prefer="1", boost={"]": 1.0}) == "]"
    assert step(proc, ["Sales", " rose", " 14", "."], prefer="</s>") == "</s>"  # nothing is forced


def test_a_label_the_model_opens_itself_is_one_that_exists() -> None:
    """Once the model wrote "[4] The Roar" with three sources: a "[" of its own admits real labels only."""
    proc = LabelAfterSentence(WordTokenizer(), n_labels=3)
    assert step(proc, ["["], prefer="4", boost={"2": 1.0}) == "2"
    assert step(proc, ["Sales", "[", "2"], prefer=" More") == "]"


def test_the_end_is_judged_after_the_penalty() -> None:
    """The model prefers " rose", the penalty makes the end of the answer the top token: label first."""

    def penalty(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        scores[:, VOCAB.index(" rose")] -= 10.0
        return scores

    proc = LabelAfterSentence(WordTokenizer(), n_labels=2, inner=penalty)
    assert step(proc, ["Sales", " rose", " 14"], prefer=" rose", boost={"</s>": 4.0}) == " ["
    plain = LabelAfterSentence(WordTokenizer(), n_labels=2)
    assert step(plain, ["Sales", " rose", " 14"], prefer=" rose", boost={"</s>": 4.0}) == " rose"
