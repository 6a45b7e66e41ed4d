"""The long-video suite: the TVQA-long loader on a hand-made file, the generated benchmark, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from mmrag.evals.long_video import MODES, EvalConfig, aggregate, evaluate, markdown
from mmrag.evals.long_video_gen import generate
from mmrag.evals.long_video_plan import COLOURS, SHAPE_NAMES, GenConfig, pick_questions, plan
from mmrag.evals.long_video_tvqa import (
    clip_spans,
    episode_chunks,
    frame_folder,
    load_tvqa_long,
    load_tvqa_subtitles,
)
from mmrag.ingest.subtitles import read_subtitles
from mmrag.types import MMRAGError


def _q(vid: str, q: str, answer: int) -> dict[str, object]:
    return {"qid": f"{vid}-{answer}", "vid_name": vid, "show_name": "Friends", "q": q, "answer_idx": answer,
            **{f"a{i}": f"choice {i} of {q}" for i in range(5)}, "ts": "1.0-3.5"}  # fmt: skip


@pytest.fixture()
def tvqa(tmp_path: Path) -> dict[str, Path]:
    """Two Friends episodes in the TVQA-long layout, subtitles, and frames for one episode."""
    questions = {
        "Friends": {
            "season_2": {
                "episode_5": {
                    "clips": ["friends_s02e05_seg02_clip_01", "friends_s02e05_seg02_clip_00"],
                    "questions": [
                        _q("friends_s02e05_seg02_clip_01", "Where is Ross?", 2),
                        _q("friends_s02e05_seg02_clip_00", "What does Monica cook?", 0),
                    ],
                },
                "episode_6": {"clips": ["friends_s02e06_seg01_clip_00"], "questions": []},
            }
        }
    }
    subs = [
        {
            "vid_name": "friends_s02e05_seg02_clip_00",
            "sub": [{"start": 0.5, "end": 2, "text": "Monica : Lasagne!"}],
        },
        {
            "vid_name": "friends_s02e05_seg02_clip_01",
            "sub": [{"start": 1, "end": 4.2, "text": "Ross : At  museum."}],
        },
    ]
    (tmp_path / "q.json").write_text(json.dumps(questions))
    (tmp_path / "subs.json").write_text(json.dumps(subs))
    frames = tmp_path / "frames_hq" / "friends_frames" / "friends_s02e05_seg02_clip_00"
    frames.mkdir(parents=True)
    for i in range(9):  # 9 frames at 3 fps: a 3-second clip
        Image.new("RGB", (16, 12), (20 * i, 0, 0)).save(frames / f"{i + 1:05d}.jpg")
    return {
        "questions": tmp_path / "q.json",
        "subs": tmp_path / "subs.json",
        "frames": tmp_path / "frames_hq",
    }


def test_tvqa_loader_reads_the_layout(tvqa: dict[str, Path]) -> None:
    episodes = load_tvqa_long(tvqa["questions"])
    assert [(e.show, e.season, e.episode) for e in episodes] == [
        ("Friends", "season_2", "episode_5"),
        ("Friends", "season_2", "episode_6"),
    ]
    ep = episodes[0]
    assert ep.key == "tvqa/Friends/season_2/episode_5"
    assert ep.clips == ["friends_s02e05_seg02_clip_00", "friends_s02e05_seg02_clip_01"]  # name order
    q = ep.questions[0]
    assert (q.q, q.answer_idx, q.vid_name, q.ts) == (
        "Where is Ross?",
        2,
        "friends_s02e05_seg02_clip_01",
        "1.0-3.5",
    )
    assert q.choices == [f"choice {i} of Where is Ross?" for i in range(5)]
    subs = load_tvqa_subtitles(tvqa["subs"])
    assert subs["friends_s02e05_seg02_clip_01"] == [(1.0, 4.2, "Ross : At museum.")]

    chunks = list(episode_chunks(ep, subs, tvqa["frames"], frames_per_clip=3))
    spans = clip_spans(chunks)
    # clip 00 has 9 frames at 3 fps (3 s); clip 01 has no frames, so its last subtitle ends it (4.2 s)
    assert spans == {
        "friends_s02e05_seg02_clip_00": (0.0, 3.0),
        "friends_s02e05_seg02_clip_01": (3.0, pytest.approx(7.2)),
    }
    first, second = chunks
    assert first.modality == "video" and first.path == ep.key and first.text == "Monica : Lasagne!"
    assert len(first.images) == 3 and first.meta["frame_dir"].endswith("friends_s02e05_seg02_clip_00")
    assert second.images == [] and "frame_dir" not in second.meta and second.locator == "t=3.000-7.200"


def test_tvqa_frame_folders_and_show_prefixes(tmp_path: Path) -> None:
    (tmp_path / "bbt_frames" / "s01e01_seg01_clip_00").mkdir(parents=True)
    (tmp_path / "castle_s01e02_seg01_clip_03").mkdir()
    assert frame_folder(tmp_path, "s01e01_seg01_clip_00") == tmp_path / "bbt_frames" / "s01e01_seg01_clip_00"
    assert (
        frame_folder(tmp_path, "bbt_s01e01_seg01_clip_00") == tmp_path / "bbt_frames" / "s01e01_seg01_clip_00"
    )
    assert frame_folder(tmp_path, "castle_s01e02_seg01_clip_03") == tmp_path / "castle_s01e02_seg01_clip_03"
    assert frame_folder(tmp_path, "house_s01e01_seg01_clip_00") is None
    assert frame_folder(None, "x") is None


def test_tvqa_loader_names_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"Friends": {"season_1": {"episode_1": {"questions": [{"q": "?"}]}}}}))
    with pytest.raises(MMRAGError, match=r"bad\.json: Friends/season_1/episode_1 question 0"):
        load_tvqa_long(bad)
    idx = tmp_path / "idx.json"
    q = _q("c", "Why?", 7)
    idx.write_text(json.dumps({"S": {"s": {"e": {"clips": ["c"], "questions": [q]}}}}))
    with pytest.raises(MMRAGError, match="answer_idx 7"):
        load_tvqa_long(idx)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(MMRAGError, match="broken.json"):
        load_tvqa_subtitles(tmp_path / "broken.json")


# -- the generated benchmark -------------------------------------------------------------------------


def test_plan_is_seeded_and_questions_are_well_formed() -> None:
    cfg = GenConfig(minutes=3.0)
    segments, questions = plan(cfg, ["clip.mp4"])
    again = plan(cfg, ["clip.mp4"])
    assert (segments, questions) == again
    assert plan(GenConfig(minutes=3.0, seed=1), ["clip.mp4"])[1] != questions
    assert len(segments) == len(questions) == 18
    assert sorted({q.kind for q in questions}) == ["both", "frames", "speech", "subtitles"]
    for q in questions:
        seg = segments[q.segment]
        written = " ".join(text for _, _, text in seg.cues)
        spoken = " ".join(text for _, text in seg.speech)
        said = written or spoken
        assert bool(written) != bool(spoken)  # a segment's lines are written or spoken, never both
        assert len(set(q.choices)) == 5 and (q.t_start, q.t_end) == (seg.t_start, seg.t_end)
        assert all(seg.t_start <= a < b <= seg.t_end for a, b, _ in seg.cues)
        assert all(seg.t_start <= a < seg.t_end for a, _ in seg.speech)
        assert seg.topic in said and seg.topic in q.question
        if q.kind in ("subtitles", "speech"):
            assert q.answer in said and (q.kind == "speech") == bool(spoken)  # said, and not shown
        elif q.kind == "frames":
            assert q.answer in (seg.colour, seg.shape) and q.answer not in said
        else:
            colour, name = q.answer.split(", called ")
            assert name in said and colour == seg.colour and colour not in said
            # each source alone leaves three choices: those with the name, those with the colour
            pairs = [c.split(", called ") for c in q.choices]
            assert sum(n == name for _, n in pairs) == 3 and sum(c == colour for c, _ in pairs) == 3
            assert all(c in COLOURS and n in SHAPE_NAMES for c, n in pairs)
    picked = pick_questions(questions, 6, seed=0)
    assert [q.kind for q in picked].count("both") == 2 and picked == pick_questions(questions, 6, seed=0)


def test_generated_files(tmp_path: Path) -> None:
    import av

    bench = generate(tmp_path, GenConfig(minutes=0.5, speech=False))
    assert bench.duration == 30.0 and bench.spoken_subtitles is None
    with av.open(str(bench.video)) as c:
        s = c.streams.video[0]
        assert (s.width, s.height) == (320, 240)
        assert sum(1 for _ in c.decode(s)) == 60  # 30 s at 2 fps
    cues = read_subtitles(bench.subtitles)
    assert [(c.start, c.end, c.text) for c in cues] == [cue for seg in bench.segments for cue in seg.cues]
    mtime = bench.video.stat().st_mtime_ns
    assert (
        generate(tmp_path, GenConfig(minutes=0.5, speech=False)).video.stat().st_mtime_ns == mtime
    )  # cached
    assert plan(GenConfig(minutes=3.0, speech=False), [])[1][0].kind in ("subtitles", "frames", "both")


def test_spoken_track_is_in_the_audio_and_in_the_spoken_subtitles_only(tmp_path: Path) -> None:
    import av
    from speech import need_espeak

    from mmrag.evals.long_video_speech import normalise, word_error_rate

    need_espeak()
    bench = generate(tmp_path, GenConfig(minutes=1.0))
    spoken_segments = [s for s in bench.segments if s.speech]
    assert len(spoken_segments) == 1 and not spoken_segments[0].cues
    with av.open(str(bench.video)) as c:
        audio = c.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.sample_rate == 16000
    plain, spoken = read_subtitles(bench.subtitles), read_subtitles(bench.spoken_subtitles)
    seg = spoken_segments[0]
    extra = [c for c in spoken if c not in plain]
    assert [c.text for c in extra] == [text for _, text in seg.speech]
    assert all(seg.t_start <= c.start < c.end <= seg.t_end for c in extra)
    assert not any(seg.topic in c.text for c in plain)  # the plain subtitles never name it
    meta = json.loads((bench.video.parent / "benchmark.json").read_text())
    assert [c[2] for c in meta["spoken"]] == [c.text for c in extra]
    lines = [c.text for c in extra]
    assert word_error_rate(lines, lines)["wer"] == 0.0
    assert word_error_rate(["The bakery has four windows."], ["the bakery had 4 windows"])["wer"] == 0.2
    assert normalise("The Harbour, twelve!") == "the harbor 12"


def test_aggregate_and_table() -> None:
    def row(kind: str, rank: int | None, full: bool, subs: bool, seen: bool) -> dict[str, object]:
        flags = dict(zip(MODES, (full, subs, seen), strict=True))
        return {
            "kind": kind,
            "gt_rank": rank,
            "seconds": 2.0,
            **{f"correct_{m}": v for m, v in flags.items()},
        }

    rows = [
        row("frames", 1, True, False, True),
        row("frames", 3, False, False, True),
        row("subtitles", None, True, True, False),
        row("subtitles", 1, True, True, False),
    ]
    m = aggregate(rows)  # type: ignore[arg-type]
    assert m["retrieval"] == {"Hits@1": 0.5, "Hits@5": 0.75}
    assert m["accuracy"]["full"] == {"all": 0.75, "frames": 0.5, "subtitles": 1.0}
    assert m["accuracy"]["frames_only"] == {"all": 0.5, "frames": 1.0, "subtitles": 0.0}
    assert m["accuracy"]["chance"]["all"] == 0.2 and m["seconds_per_question"] == 2.0
    table = markdown(m)
    assert "| full | 0.750 | 0.500 | 1.000 |" in table and "Hits@1 0.500" in table


@pytest.mark.slow
def test_tiny_benchmark_end_to_end(tmp_path: Path) -> None:
    """The whole suite on a one-minute video with a tiny random bridge (real MiniLM and EfficientNet)."""
    import torch
    from tiny_generators import tiny_clip_vision, tiny_llama

    from mmrag.generate.bridge import BridgeConfig, BridgeModel

    cfg = BridgeConfig(
        vision=str(tiny_clip_vision(tmp_path / "clip")),
        llm=str(tiny_llama(tmp_path / "llm")),
        projector_hidden=24,
    )
    torch.manual_seed(0)
    bridge = BridgeModel.from_config(cfg, device="cpu").save(tmp_path / "bridge")
    run_cfg = EvalConfig(
        generator=str(bridge), questions=3, minutes=1.0, videos="", runs=str(tmp_path / "runs"), speech="off"
    )
    metrics = evaluate(run_cfg, bench_file=tmp_path / "bench.json", show_progress=False)
    run = Path(metrics["run"])
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and sorted(r["kind"] for r in rows) == ["both", "frames", "subtitles"]
    assert metrics["clips_indexed"] == 6 and metrics["video_minutes"] == 1.0
    assert metrics["accuracy"]["full"]["all"] == round(sum(r["correct_full"] for r in rows) / 3, 4)
    # the subtitles name each segment's topic: MiniLM + BM25 find the right clip
    assert metrics["retrieval"]["Hits@5"] == 1.0 and all(r["gt_rank"] is not None for r in rows)
    assert all("long_video.mp4 " in r["answer"] for r in rows)
    assert json.loads((tmp_path / "bench.json").read_text())["questions"] == 3
    assert {"metrics.md", "metrics.json", "config.json", "samples.jsonl"} <= {p.name for p in run.iterdir()}


@pytest.mark.slow
def test_tvqa_long_end_to_end(tvqa: dict[str, Path], tmp_path: Path) -> None:
    """TVQA-long through the same loop: episodes indexed as pseudo-videos, questions against them."""
    from tiny_generators import tiny_llama

    llm = tiny_llama(tmp_path / "llm")  # a text LLM: subtitles only, frames-only falls back to the prior
    cfg = EvalConfig(
        generator=str(llm),
        questions=0,
        tvqa=str(tvqa["questions"]),
        tvqa_subtitles=str(tvqa["subs"]),
        tvqa_frames=str(tvqa["frames"]),
        runs=str(tmp_path / "runs"),
    )
    metrics = evaluate(cfg, show_progress=False)
    assert metrics["benchmark"] == "tvqa-long" and metrics["questions"] == 2 and metrics["episodes"] == 2
    assert metrics["clips_indexed"] == 3
    rows = [json.loads(line) for line in (Path(metrics["run"]) / "samples.jsonl").read_text().splitlines()]
    ross = next(r for r in rows if r["question"] == "Where is Ross?")
    assert ross["span"] == [3.0, pytest.approx(7.2)] and ross["gt_rank"] is not None
    assert metrics["accuracy"]["full"]["all"] == sum(r["correct_full"] for r in rows) / 2
    again = evaluate(cfg, show_progress=False)  # the index is reused, not rebuilt
    assert again["clips_indexed"] == 3 and again["accuracy"] == metrics["accuracy"]
