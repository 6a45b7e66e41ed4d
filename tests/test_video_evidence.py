"""A clip's text as evidence: choice forms, completion scores against a hand-computed likelihood, the
PMI row, the decisive margin, and late fusion letting a decisive text answer alone."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest

from mmrag.answer.video.clips import VideoClip, VideoQAOptions
from mmrag.answer.video.evidence import completion_prompt, completion_scores, decisive, evidence
from mmrag.answer.video.scoring import choice_forms, expand_forms, fold_forms, log_softmax, score_choices
from mmrag.types import Hit, MMRAGError

torch = pytest.importorskip("torch")

QUESTION = "How many windows does the hotel have?"
CHOICES = ["twelve", "Bingo", "the red door"]
TEXT = "This part is about the hotel, the hotel has 12 windows."


def test_choice_forms_spell_numbers_both_ways() -> None:
    assert choice_forms("twelve") == ["twelve", "12"]
    assert choice_forms("12") == ["12", "twelve"]
    assert choice_forms("Twenty-One") == ["Twenty-One", "21"]
    assert choice_forms("1,000") == ["1,000", "one thousand"]
    assert choice_forms("Bingo") == ["Bingo"]
    assert choice_forms("12 apples") == ["12 apples"]  # only a whole number has another spelling
    assert choice_forms("5000") == ["5000"]  # beyond the table: itself
    assert expand_forms(["a", "two"]) == (["a", "two", "2"], [0, 1, 1])


def test_fold_forms() -> None:
    scores, owner = [-1.0, -2.0, -3.0], [0, 1, 1]
    summed = fold_forms(scores, owner, 2, "sum")
    assert summed == pytest.approx([-1.0, math.log(math.exp(-2.0) + math.exp(-3.0))])
    assert fold_forms(scores, owner, 2, "mean") == [-1.0, -2.0]


@pytest.fixture(scope="module")
def llm(tmp_path_factory: pytest.TempPathFactory) -> object:
    from tiny_generators import tiny_llama

    from mmrag.generate.llm import TextGenerator

    return TextGenerator.load(str(tiny_llama(tmp_path_factory.mktemp("ev") / "llama")), device="cpu")


def _reference(gen: object, prefix: str, choice: str) -> float:
    """Summed log-probability of ` choice` after `prefix`, from one full forward pass."""
    tok, model = gen.tokenizer, gen.model  # type: ignore[attr-defined]
    p = tok(prefix, add_special_tokens=False)["input_ids"]
    a = tok(" " + choice, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([p + a])).logits.log_softmax(-1)[0]
    return sum(float(logp[len(p) - 1 + i, t]) for i, t in enumerate(a))


def test_completion_scores_equal_reference(llm: object) -> None:
    prefix = completion_prompt(QUESTION, TEXT)
    assert prefix == f"{TEXT}\nQuestion: {QUESTION}\nAnswer:"
    assert completion_prompt(QUESTION) == f"Question: {QUESTION}\nAnswer:"
    got = completion_scores(llm, prefix, CHOICES)
    twelve = [_reference(llm, prefix, f) for f in ("twelve", "12")]
    assert got[0] == pytest.approx(math.log(sum(math.exp(x) for x in twelve)), abs=1e-4)
    assert got[1] == pytest.approx(_reference(llm, prefix, "Bingo"), abs=1e-4)
    assert got[2] == pytest.approx(_reference(llm, prefix, "the red door"), abs=1e-4)


def test_chat_scores_count_every_form(llm: object) -> None:
    from mmrag.answer.video.scoring import choice_logprobs

    forms = [sum(lp) for lp in choice_logprobs(llm, QUESTION, [], ["twelve", "12"])]  # no forms here
    means = [sum(lp) / len(lp) for lp in choice_logprobs(llm, QUESTION, [], ["twelve", "12"])]
    want = math.log(sum(math.exp(x) for x in forms))
    assert score_choices(llm, QUESTION, [], ["twelve", "x"], "sum")[0] == pytest.approx(want, abs=1e-4)
    assert score_choices(llm, QUESTION, [], ["12", "x"], "sum")[0] == pytest.approx(want, abs=1e-4)
    assert score_choices(llm, QUESTION, [], ["12", "x"], "mean")[0] == pytest.approx(max(means), abs=1e-4)


def test_evidence_is_the_log_ratio_and_reuses_the_baseline(llm: object) -> None:
    said, base = evidence(llm, QUESTION, TEXT, CHOICES)
    given = log_softmax(completion_scores(llm, completion_prompt(QUESTION, TEXT), CHOICES))
    bare = log_softmax(completion_scores(llm, completion_prompt(QUESTION), CHOICES))
    assert base == pytest.approx(bare)
    assert said == pytest.approx([g - b for g, b in zip(given, bare, strict=True)])
    again, _ = evidence(llm, QUESTION, TEXT, CHOICES, baseline=base)
    assert again == pytest.approx(said)
    empty, _ = evidence(llm, QUESTION, "  ", CHOICES, baseline=base)
    assert empty == pytest.approx([0.0, 0.0, 0.0], abs=1e-5)  # no text: no evidence


def test_decisive_margin() -> None:
    assert decisive([3.0, 1.0, 0.5], 1.0)
    assert not decisive([3.0, 2.5, 0.5], 1.0)
    assert decisive([3.0, 2.5], 0.5)
    assert decisive([0.0], 5.0)


def test_a_decisive_text_answers_alone_in_late_fusion(tmp_path: Path) -> None:
    from tiny_generators import tiny_clip_vision, tiny_llama

    from mmrag.answer.video.answer import answer_from_clips
    from mmrag.generate.bridge import BridgeConfig, BridgeModel
    from mmrag.generate.loader import Generator

    cfg = BridgeConfig(
        vision=str(tiny_clip_vision(tmp_path / "clip")),
        llm=str(tiny_llama(tmp_path / "llama")),
        n_visual_tokens=4,
        projector_hidden=24,
    )
    torch.manual_seed(1)
    gen = Generator(BridgeModel.from_config(cfg, device="cpu"), True, "tiny-bridge")
    from PIL import Image

    clip = VideoClip(Hit("a", 1.0, "video", "v.mp4", t_start=0.0, t_end=10.0, text=TEXT), 1)
    frames = [[(1.0, Image.new("RGB", (8, 8), (200, 30, 30))), (2.0, Image.new("RGB", (8, 8), (9, 9, 200)))]]
    opts = VideoQAOptions(fusion="late", context_clips=1, frames=2)
    always = answer_from_clips(gen, QUESTION, [clip], CHOICES, replace(opts, text_margin=0.0), frames)
    said, _ = evidence(gen.backend, QUESTION, TEXT, CHOICES)
    prior = always.parts["prior"]
    want = log_softmax([p + e for p, e in zip(prior, said, strict=True)])
    assert always.scores == pytest.approx(want, abs=1e-4)
    assert always.scores == pytest.approx(always.parts["subtitles"], abs=1e-5)  # the frames do not count
    never = answer_from_clips(gen, QUESTION, [clip], CHOICES, replace(opts, text_margin=math.inf), frames)
    chat = answer_from_clips(gen, QUESTION, [clip], CHOICES, replace(opts, text_scoring="chat"), frames)
    assert never.scores == pytest.approx(chat.scores, abs=1e-5)  # not decisive: the chat reading
    assert chat.scores != pytest.approx(always.scores, abs=1e-3)
    with pytest.raises(MMRAGError, match="text_scoring must be pmi or chat"):
        answer_from_clips(gen, QUESTION, [clip], CHOICES, replace(opts, text_scoring="votes"), frames)  # type: ignore[arg-type]
