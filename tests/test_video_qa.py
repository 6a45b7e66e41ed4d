"""Long-video QA: choice scores against a hand-computed likelihood, frame budgets, neighbours, times."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from media import BLUE, GREEN, RED, YELLOW, make_srt, make_video

from mmrag.answer.video.answer import answer_video
from mmrag.answer.video.clips import (
    VideoClip,
    VideoQAOptions,
    cite_clips,
    clip_weights,
    context_clips,
    neighbour_directions,
    retrieve_clips,
    time_filter,
)
from mmrag.answer.video.frames import frames_for_clip, sample_video_frames, split_frame_budget
from mmrag.answer.video.scoring import log_mixture, log_softmax, naive_bayes, reduce_logprobs
from mmrag.types import Hit, MMRAGError, format_span, hms

torch = pytest.importorskip("torch")

CHOICES = ["red", "blue green", "yes", "the circle"]
PROMPT = "what is the color of the shape ?"


# -- time formats, budgets, cue words ---------------------------------------------------------------


def test_time_formatting() -> None:
    assert hms(0) == "00:00:00"
    assert hms(751.9) == "00:12:31"  # whole seconds, rounded down
    assert hms(3725) == "01:02:05"
    assert hms(-3) == "00:00:00"
    assert hms(100 * 3600 + 1) == "100:00:01"
    assert format_span(751, 761) == "00:12:31–00:12:41"
    assert format_span(5.0) == "00:00:05–00:00:05"
    hit = Hit("a", 1.0, "video", "/v/ep.mkv", t_start=751.0, t_end=761.0)
    assert VideoClip(hit, 1).span == hit.locator() == "00:12:31–00:12:41"


def test_time_filter_accepts_seconds_and_clock_times() -> None:
    assert time_filter(None) is None
    assert time_filter((5, 20)) == "5.0-20.0"
    assert time_filter("10-60") == "10-60"
    assert time_filter("00:10-01:00") == "10.0-60.0"
    assert time_filter("01:00:00–01:00:30") == "3600.0-3630.0"
    with pytest.raises(MMRAGError, match="bad time range"):
        time_filter("ab:cd-01:00")


@pytest.mark.parametrize("strategy", ["even", "rank"])
def test_frame_budget_split(strategy: str) -> None:
    for budget in range(0, 13):
        for n in range(0, 6):
            shares = split_frame_budget(budget, n, strategy)  # type: ignore[arg-type]
            assert len(shares) == n
            assert sum(shares) == (budget if n else 0)
            assert all(a >= b for a, b in zip(shares, shares[1:], strict=False))  # never more further down
            if budget >= n:
                assert all(s >= 1 for s in shares)
            if strategy == "even" and n:
                assert max(shares) - min(shares) <= 1
    assert split_frame_budget(8, 3, "even") == [3, 3, 2]
    # rank: one each, then the 5 spare frames by 1/rank (quotas 2.73, 1.36, 0.91), largest remainders
    assert split_frame_budget(8, 3, "rank") == [4, 2, 2]
    assert split_frame_budget(2, 4) == [1, 1, 0, 0]
    with pytest.raises(MMRAGError):
        split_frame_budget(4, 2, "random")  # type: ignore[arg-type]


def test_neighbour_cue_words() -> None:
    assert neighbour_directions("What happened before the explosion?") == {"before"}
    assert neighbour_directions("What does she do after leaving the kitchen?") == {"after"}
    assert neighbour_directions("Where did they go next?") == {"after"}
    assert neighbour_directions("Was it there earlier, and what followed?") == {"before", "after"}
    assert neighbour_directions("What colour is the car?") == set()
    assert neighbour_directions("Who is the afterthought about?") == set()  # whole words only


def test_late_fusion_math() -> None:
    prior = log_softmax([0.0, 1.0, 2.0])
    expert = log_softmax([3.0, 0.0, 0.0])
    # an expert that says nothing beyond the prior leaves the other one unchanged
    assert naive_bayes(prior, expert, prior) == pytest.approx(expert)
    assert log_mixture([expert], [5.0]) == pytest.approx(expert)
    mix = log_mixture([prior, expert], [3.0, 1.0])
    want = [math.log(0.75 * math.exp(p) + 0.25 * math.exp(e)) for p, e in zip(prior, expert, strict=True)]
    assert mix == pytest.approx(want)
    assert sum(math.exp(x) for x in mix) == pytest.approx(1.0)
    assert reduce_logprobs([-1.0, -3.0], "sum") == -4.0
    assert reduce_logprobs([-1.0, -3.0], "mean") == -2.0


# -- frames -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 s at 4 fps; colours change every 10 s (red, green, blue, yellow); a cue per 10 s."""
    root = tmp_path_factory.mktemp("vqa")
    path = make_video(root / "walk.mp4", 40, fps=4, size=(64, 48), seconds_per_colour=10)
    make_srt(
        root / "walk.srt",
        [
            (1, 8, "We start at the harbour with the ferry."),
            (11, 18, "The fire broke out at the bakery."),
            (21, 28, "Firefighters arrived at the bakery quickly."),
            (31, 38, "Finally everyone had soup at the lighthouse."),
        ],
    )
    return path


def _colour(img: object) -> tuple[int, int, int]:
    return img.resize((1, 1)).getpixel((0, 0))  # type: ignore[attr-defined,no-any-return]


def _close(a: tuple[int, int, int], b: tuple[int, int, int]) -> bool:
    return all(abs(x - y) < 40 for x, y in zip(a, b, strict=True))


def test_sample_video_frames_at_times(video: Path) -> None:
    times = [2.0, 12.5, 19.9, 25.0, 39.0, 60.0]  # the last is past the end: the last frame
    frames = sample_video_frames(video, times)
    want = [RED, GREEN, GREEN, BLUE, YELLOW, YELLOW]
    assert len(frames) == len(times)
    assert all(_close(_colour(f), w) for f, w in zip(frames, want, strict=True))


def test_frames_for_clip_from_video_and_folder(video: Path, tmp_path: Path) -> None:
    hit = Hit("c", 1.0, "video", str(video), t_start=20.0, t_end=30.0)
    got = frames_for_clip(hit, 3)
    assert [round(t, 2) for t, _ in got] == [21.67, 25.0, 28.33]
    assert all(_close(_colour(im), BLUE) for _, im in got)
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i, c in enumerate([RED, RED, GREEN, GREEN, BLUE, BLUE]):
        Image.new("RGB", (8, 8), c).save(folder / f"{i:05d}.jpg")
    tv = Hit("t", 1.0, "video", "tvqa/show/s1/e1", t_start=0.0, t_end=2.0, payload={"frame_dir": str(folder)})
    picked = [_colour(im) for _, im in frames_for_clip(tv, 3)]
    assert [_close(p, w) for p, w in zip(picked, [RED, GREEN, BLUE], strict=True)] == [True] * 3
    gone = Hit("g", 1.0, "video", str(tmp_path / "moved.mp4"), t_start=0.0, t_end=5.0)
    assert frames_for_clip(gone, 2) == []  # a file that moved: no frames, no crash


# -- retrieval and neighbours on a real (BM25-only) index -------------------------------------------


@pytest.fixture(scope="module")
def index(video: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mmrag import Pipeline

    idx = tmp_path_factory.mktemp("vqa-idx")
    # BM25 over the subtitles only: no model to load, the retrieval logic is what is under test
    over = {"encoders.image": "none", "encoders.text": "none", "encoders.ocr": False}
    with Pipeline.from_config(profile="offline", index=idx, **over) as p:
        assert p.index([video]).points_written == 4
    return idx


def test_retrieval_filters_by_video_and_time(index: Path, video: Path) -> None:
    from mmrag import Pipeline

    with Pipeline.load(index) as p:
        hits = retrieve_clips(p.search, "bakery fire", video="walk.mp4", k=5)
        assert hits and hits[0].t_start == 10.0
        assert {h.t_start for h in hits} <= {10.0, 20.0}
        late = retrieve_clips(p.search, "bakery fire", video="walk.mp4", time="00:25-00:40", k=5)
        assert [h.t_start for h in late] == [20.0]  # clips overlapping 25-40 s only
        assert retrieve_clips(p.search, "bakery fire", video="other.mp4", k=5) == []


def test_neighbour_expansion(index: Path) -> None:
    from mmrag import Pipeline

    with Pipeline.load(index) as p:
        hits = retrieve_clips(p.search, "fire broke out", k=1)
        assert hits[0].t_start == 10.0
        opts = VideoQAOptions(context_clips=1)

        def starts(question: str, **kw: object) -> list[tuple[float | None, int | None]]:
            clips = context_clips(p.store, question, hits, VideoQAOptions(context_clips=1, **kw))  # type: ignore[arg-type]
            return [(c.hit.t_start, c.neighbour_of) for c in clips]

        assert starts("what happened after the fire broke out?") == [(10.0, None), (20.0, 1)]
        assert starts("where were we before the fire broke out?") == [(10.0, None), (0.0, 1)]
        assert starts("when did the fire break out?") == [(10.0, None)]
        assert starts("when did the fire break out?", neighbours=True) == [(10.0, None), (0.0, 1), (20.0, 1)]
        assert starts("what happened after the fire?", neighbours=False) == [(10.0, None)]
        clips = context_clips(p.store, "what happened after the fire?", hits, opts)
        assert clip_weights(clips) == [1.0, 1.0]  # a neighbour weighs as its hit


# -- choice scoring against the reference likelihood ------------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from tiny_generators import tiny_clip_vision, tiny_llama, tiny_llava

    root = tmp_path_factory.mktemp("tiny-vqa")
    return {
        "llama": tiny_llama(root / "llama"),
        "llava": tiny_llava(root / "llava"),
        "clip": tiny_clip_vision(root / "clip"),
    }


def _images() -> list[object]:
    from PIL import Image

    return [Image.new("RGB", (8, 8), (200, 30, 30)), Image.new("RGB", (8, 8), (20, 30, 220))]


def _reduce(values: list[float], normalise: str) -> float:
    return sum(values) / len(values) if normalise == "mean" else sum(values)


@pytest.mark.parametrize("normalise", ["sum", "mean"])
def test_text_llm_scores_equal_reference(tiny: dict[str, Path], normalise: str) -> None:
    from mmrag.answer.video.scoring import score_choices
    from mmrag.generate.llm import TextGenerator

    gen = TextGenerator.load(str(tiny["llama"]), device="cpu")
    tok = gen.tokenizer
    scores = score_choices(gen, PROMPT, [], CHOICES, normalise)  # type: ignore[arg-type]
    msgs = [{"role": "user", "content": PROMPT}]
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    for choice, score in zip(CHOICES, scores, strict=True):
        full = tok.apply_chat_template([*msgs, {"role": "assistant", "content": choice}], tokenize=False)
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        a = tok(full[len(prompt) :], add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            logp = gen.model(input_ids=torch.tensor([p + a])).logits.log_softmax(-1)[0]
        want = [float(logp[len(p) - 1 + i, t]) for i, t in enumerate(a)]
        assert score == pytest.approx(_reduce(want, normalise), abs=1e-4)


@pytest.mark.parametrize("normalise", ["sum", "mean"])
def test_vlm_scores_equal_loss_reference(tiny: dict[str, Path], normalise: str) -> None:
    from mmrag.answer.video.scoring import score_choices
    from mmrag.generate.vlm import VLMGenerator

    vlm = VLMGenerator.load(str(tiny["llava"]), device="cpu")
    images = _images()
    scores = score_choices(vlm, PROMPT, images, CHOICES, normalise)  # type: ignore[arg-type]
    prompt_len = vlm.inputs(PROMPT, images)["input_ids"].shape[1]
    for choice, score in zip(CHOICES, scores, strict=True):
        content = [{"type": "image"}, {"type": "image"}, {"type": "text", "text": PROMPT}]
        msgs = [{"role": "user", "content": content}, {"role": "assistant", "content": choice}]
        text = vlm.processor.apply_chat_template(msgs, tokenize=False)
        batch = vlm.processor(images=images, text=text, return_tensors="pt")
        labels = batch["input_ids"].clone()
        labels[:, :prompt_len] = -100  # only the reply's tokens count
        with torch.no_grad():
            loss = vlm.model(**batch, labels=labels).loss  # mean negative log-likelihood of the reply
        n = int((labels != -100).sum())
        want = -float(loss) * n
        assert score == pytest.approx(want / n if normalise == "mean" else want, abs=1e-3)


def _tiny_bridge(tiny: dict[str, Path]) -> object:
    from mmrag.generate.bridge import BridgeConfig, BridgeModel

    cfg = BridgeConfig(
        vision=str(tiny["clip"]), llm=str(tiny["llama"]), n_visual_tokens=4, projector_hidden=24
    )
    torch.manual_seed(1)
    return BridgeModel.from_config(cfg, device="cpu")


def test_bridge_scores_equal_reference_with_several_images(tiny: dict[str, Path]) -> None:
    from mmrag.answer.video.scoring import score_choices, score_choices_each

    bridge = _tiny_bridge(tiny)
    images = _images()
    scores = score_choices(bridge, PROMPT, images, CHOICES, "sum")
    feats = bridge.vision_features(images)  # type: ignore[attr-defined]
    for choice, score in zip(CHOICES, scores, strict=True):
        prompt, answer = bridge.chat_parts(PROMPT, 2, choice)  # type: ignore[attr-defined]
        p, a = bridge._ids(prompt), bridge._ids(answer)  # type: ignore[attr-defined]
        with torch.no_grad():
            logp = bridge(torch.tensor([p + a]), vision_features=feats).logits.log_softmax(-1)[0]  # type: ignore[operator]
        assert score == pytest.approx(sum(float(logp[len(p) - 1 + i, t]) for i, t in enumerate(a)), abs=1e-4)
    # one row per image, batched, equals scoring each image alone
    each = score_choices_each(bridge, PROMPT, images, CHOICES, "mean")
    alone = [score_choices(bridge, PROMPT, [im], CHOICES, "mean") for im in images]
    for row, want in zip(each, alone, strict=True):
        assert row == pytest.approx(want, abs=1e-4)
    assert each[0] != pytest.approx(each[1])  # the image matters


# -- end to end ---------------------------------------------------------------------------------------
def _parts(p: Any) -> tuple[Any, Any, Any]:
    """What `answer_video` reads: the search, the store and the generator's loader."""
    from functools import partial

    from mmrag.generate.loader import load_generator

    return p.search, p.store, partial(load_generator, p.config.generate)


def test_answer_video_multiple_choice_and_free_form(index: Path, tiny: dict[str, Path]) -> None:
    from mmrag import Pipeline

    with Pipeline.load(index, **{"generate.model": str(tiny["llava"]), "generate.max_new_tokens": 4}) as p:
        a = answer_video(
            *_parts(p), "what happened after the fire broke out?", "walk.mp4", ["red", "blue"], frames=3
        )
        assert a.scores is not None and a.chosen == max(range(2), key=a.scores.__getitem__)
        assert a.answer == ["red", "blue"][a.chosen]
        assert a.retrieved[0].t_start == 10.0
        spans = [c.span for c in a.clips]  # in time order: the hit, then the clip after it (cue word)
        assert spans[0] == "00:00:10–00:00:20" and "00:00:20–00:00:30" in spans
        assert "walk.mp4 " in a.text and "00:00:10–00:00:20" in a.text  # the answer names its clips
        assert sum(c.n_frames for c in a.clips) == 3
        assert set(a.timings) == {"retrieve", "load", "frames", "answer"}
        json.dumps(a.to_dict())
        free = answer_video(*_parts(p), "what did they eat at the lighthouse?", "walk.mp4")
        assert free.choices is None and isinstance(free.answer, str)
        with pytest.raises(MMRAGError, match="no video clip"):
            answer_video(*_parts(p), "anything", "missing.mp4", ["a", "b"])
        with pytest.raises(MMRAGError, match="two choices"):
            answer_video(*_parts(p), "anything", None, ["a"])


def test_late_fusion_ablations_are_the_sources_alone(video: Path, tiny: dict[str, Path]) -> None:
    from dataclasses import replace

    from mmrag.answer.video.answer import answer_from_clips
    from mmrag.generate.loader import Generator

    gen = Generator(_tiny_bridge(tiny), True, "tiny-bridge")
    clips = [
        VideoClip(Hit("a", 1.0, "video", str(video), t_start=10.0, t_end=20.0, text="the fire"), 1),
        VideoClip(Hit("b", 0.5, "video", str(video), t_start=30.0, t_end=40.0, text="soup"), 2),
    ]
    opts = VideoQAOptions(frames=3, fusion="late", frame_px=8)
    full = answer_from_clips(gen, PROMPT, clips, CHOICES, opts)
    assert [c.n_frames for c in full.clips] == [2, 1] and [c.n_frames for c in clips] == [0, 0]
    subs = answer_from_clips(gen, PROMPT, clips, CHOICES, replace(opts, use_frames=False))
    seen = answer_from_clips(gen, PROMPT, clips, CHOICES, replace(opts, use_subtitles=False))
    assert subs.scores == pytest.approx(full.parts["subtitles"], abs=1e-5)
    assert seen.scores == pytest.approx(full.parts["frames"], abs=1e-5)
    assert full.scores != pytest.approx(subs.scores)
    assert cite_clips(full.clips) == "clips: walk.mp4 00:00:10–00:00:20, 00:00:30–00:00:40"


def test_cli_ask_video_with_choices(index: Path, tiny: dict[str, Path]) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    args = ["ask", "where did the fire break out?", "--index", str(index), "-g", str(tiny["llama"])]
    r = CliRunner().invoke(
        app, [*args, "--video", "walk.mp4", "--choice", "bakery", "--choice", "harbour", "--json"]
    )
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["choices"] == ["bakery", "harbour"] and out["answer"] == out["choices"][out["chosen"]]
    assert out["clips"][0]["span"] == "00:00:10–00:00:20" and out["clips"][0]["n_frames"] == 0  # a text LLM
    r = CliRunner().invoke(app, [*args, "--choice", "bakery", "--choice", "harbour"])
    assert r.exit_code == 0 and "walk.mp4 00:00:10–00:00:20" in r.stdout
