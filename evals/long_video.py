"""Long-video QA: clip retrieval and 5-choice accuracy, beside chance and two ablations in the same run.

Two benchmarks run through the same loop (`mmrag.answer.video.clips`: retrieve clips, decode frames, score the
choices by likelihood):

- `generated` (default, no outside data): a 21-minute video with subtitles planned by
  `long_video_plan` and rendered by `long_video_gen` (easy-VQA shapes, text cards, real clips from
  `../shared/data/video` when present), questions answerable from the subtitles only, the frames
  only, or both;
- `tvqa-long`: Goldfish's TVQA-long layout (`long_video_tvqa`), when a user has the files.

Per question: the ground-truth clip's rank among the retrieved clips (a clip counts when its
midpoint lies in the answer's span), and the choice picked with frames and subtitles (`full`), with
the subtitles only, and with the frames only (the same retrieval; only what the answerer reads
changes). Metrics: Hits@1 and Hits@5 of the clip, accuracy overall and per kind beside chance
(1/5), and seconds per question (retrieval, frame decoding and the full answer).

Output: `runs/long-video/<timestamp>/` (samples.jsonl, metrics.json, metrics.md, config.json) and
the summary in `bench/results/long_video.json`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.evals import write_json, write_run
from mmrag.evals.long_video_config import EvalConfig, Item, default_bridge, shared_videos, split_of_seed
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.answer.video.clips import VideoQAOptions
    from mmrag.generate.loader import Generator
    from mmrag.pipeline import Pipeline

MODES = ("full", "subtitles_only", "frames_only")
CHANCE = 0.2


def _options(cfg: EvalConfig) -> VideoQAOptions:
    from mmrag.answer.video.clips import VideoQAOptions

    return VideoQAOptions(
        k=cfg.k,
        context_clips=cfg.context_clips,
        frames=cfg.frames,
        frame_px=cfg.frame_px,
        normalise=cfg.normalise,
        fusion=cfg.fusion,
        text_scoring=cfg.text_scoring,
        neighbours="auto",
    )


def _rank(hits: list[Any], span: tuple[float, float]) -> int | None:
    """1-based rank of the first retrieved clip whose midpoint lies in `span`."""
    for i, h in enumerate(hits, 1):
        mid = ((h.t_start or 0.0) + (h.t_end if h.t_end is not None else h.t_start or 0.0)) / 2
        if span[0] <= mid <= span[1]:
            return i
    return None


def run_item(
    pipe: Pipeline, gen: Generator, item: Item, opts: VideoQAOptions, ablations: bool = True
) -> dict[str, Any]:
    """Retrieve, then answer with both sources and (`ablations`) with each alone; one sample row."""
    from mmrag.answer.video.answer import answer_from_clips, decode_frames
    from mmrag.answer.video.clips import context_clips, retrieve_clips

    t0 = time.perf_counter()
    hits = retrieve_clips(pipe.search, item.question, item.video, k=max(opts.k, opts.context_clips))
    clips = context_clips(pipe.store, item.question, hits, opts)
    t_retrieve = time.perf_counter() - t0
    frames = decode_frames(clips, opts) if gen.reads_images else [[] for _ in clips]
    full = answer_from_clips(gen, item.question, clips, item.choices, opts, frames=frames)
    seconds = time.perf_counter() - t0
    picks: dict[str, int | None] = {"full": full.chosen, "subtitles_only": None, "frames_only": None}
    if not ablations:
        pass
    elif {"subtitles", "frames"} <= set(full.parts):  # late fusion computed both sources on the way
        for mode, part in (("subtitles_only", "subtitles"), ("frames_only", "frames")):
            picks[mode] = max(range(len(item.choices)), key=full.parts[part].__getitem__)
    else:
        subs = answer_from_clips(gen, item.question, clips, item.choices, replace(opts, use_frames=False))
        seen = replace(opts, use_subtitles=False)
        picks["subtitles_only"] = subs.chosen
        picks["frames_only"] = answer_from_clips(gen, item.question, clips, item.choices, seen, frames).chosen
    rank = _rank(hits[: opts.k], item.span)
    return {
        "id": item.id,
        "kind": item.kind,
        "question": item.question,
        "choices": item.choices,
        "answer_idx": item.answer_idx,
        "span": list(item.span),
        "gt_rank": rank,
        "retrieved": [[h.t_start, h.t_end] for h in hits[: opts.k]],
        "clips_used": [c.span for c in full.clips],
        "answer": full.text,
        **{f"pick_{m}": picks[m] for m in MODES},
        **{f"correct_{m}": None if picks[m] is None else picks[m] == item.answer_idx for m in MODES},
        "scores": full.scores,
        "seconds": round(seconds, 3),
        "seconds_retrieve": round(t_retrieve, 3),
    }


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Hits@1/@5, accuracy per mode overall and per kind, chance, seconds per question."""
    if not rows:
        raise MMRAGError("no question was answered")
    kinds = ["all", *sorted({r["kind"] for r in rows})]

    def acc(mode: str, kind: str) -> float | None:
        sel = [r[f"correct_{mode}"] for r in rows if kind == "all" or r["kind"] == kind]
        sel = [x for x in sel if x is not None]  # None: the ablation was not run
        return round(sum(sel) / len(sel), 4) if sel else None

    ranks = [r["gt_rank"] for r in rows]
    return {
        "questions": len(rows),
        "counts": {k: sum(1 for r in rows if k == "all" or r["kind"] == k) for k in kinds},
        "retrieval": {
            "Hits@1": round(sum(1 for x in ranks if x == 1) / len(rows), 4),
            "Hits@5": round(sum(1 for x in ranks if x is not None and x <= 5) / len(rows), 4),
        },
        "accuracy": {m: {k: acc(m, k) for k in kinds} for m in MODES}
        | {"chance": dict.fromkeys(kinds, CHANCE)},
        "seconds_per_question": round(sum(r["seconds"] for r in rows) / len(rows), 3),
    }


def markdown(metrics: dict[str, Any]) -> str:
    """The accuracy table, then retrieval and speed."""
    acc = metrics["accuracy"]
    kinds = list(acc["full"])
    lines = ["| answerer | " + " | ".join(kinds) + " |", "|---" * (len(kinds) + 1) + "|"]
    for mode in (*MODES, "chance"):
        lines.append(
            f"| {mode.replace('_', ' ')} | "
            + " | ".join("–" if acc[mode][k] is None else f"{acc[mode][k]:.3f}" for k in kinds)
            + " |"
        )
    lines.append("| questions | " + " | ".join(str(metrics["counts"][k]) for k in kinds) + " |")
    r = metrics["retrieval"]
    lines += [
        "",
        f"Clip retrieval: Hits@1 {r['Hits@1']:.3f}, Hits@5 {r['Hits@5']:.3f}; "
        f"{metrics['seconds_per_question']:.2f} s per question (retrieve, frames, answer).",
    ]
    return "\n".join(lines) + "\n"


# -- benchmarks -------------------------------------------------------------------------------------


def _pipeline(cfg: EvalConfig, index: Path) -> Pipeline:
    from mmrag.pipeline import Pipeline

    overrides: dict[str, Any] = {
        "encoders.ocr": False,  # video frames are not OCR'd; skip loading the OCR models
        "ingest.clip_seconds": cfg.clip_seconds,
        "ingest.asr": "always" if cfg.speech == "asr" else "never",
        "ingest.asr_model": cfg.asr_model,
        "ingest.asr_beam_size": cfg.asr_beam_size,
        "generate.model": cfg.generator or default_bridge(),
        "generate.device": cfg.device,
    }
    return Pipeline.from_config(profile="offline", index=index, **overrides)


def generated_items(cfg: EvalConfig) -> tuple[list[Item], Path, dict[str, Any]]:
    """Generate (or reuse) the benchmark; its items, the video, and facts for the metrics."""
    from mmrag.evals.long_video_gen import generate
    from mmrag.evals.long_video_plan import GenConfig, pick_questions

    real = Path(cfg.videos) if cfg.videos else (shared_videos() if cfg.videos is None else None)
    real = real if real is not None and real.is_dir() else None
    bench = generate(
        Path(cfg.runs) / "long-video" / "data",
        GenConfig(seed=cfg.seed, minutes=cfg.minutes, speech=cfg.speech != "off"),
        real,
    )
    chosen = pick_questions(bench.questions, cfg.questions, cfg.seed)
    if cfg.kinds:
        chosen = [q for q in chosen if q.kind in cfg.kinds.split(",")]
    name = bench.video.name
    items = [
        Item(q.id, q.kind, q.question, q.choices, q.answer_idx, name, (q.t_start, q.t_end)) for q in chosen
    ]
    facts = {
        "video": str(bench.video),
        "video_minutes": round(bench.duration / 60, 2),
        "real_videos": sorted({s.visual[5:] for s in bench.segments if s.visual.startswith("real:")}),
        "speech": cfg.speech if bench.spoken_subtitles else None,
    }
    return items, bench.video, facts


def _condition(cfg: EvalConfig, video: Path) -> Path:
    """The video as the speech condition sees it: beside the subtitle file that condition reads.

    `subtitles` pairs it (a link) with `long_video.spoken.srt` in a folder of its own; the other
    conditions read the plain subtitles beside the original.
    """
    spoken = video.with_name("long_video.spoken.srt")
    if cfg.speech not in ("asr", "subtitles", "none", "off"):
        raise MMRAGError(f"speech must be asr, subtitles, none or off (got {cfg.speech!r})")
    if cfg.speech != "subtitles" or not spoken.is_file():
        return video
    folder = video.parent / "spoken-subtitles"
    folder.mkdir(exist_ok=True)
    for link, target in ((folder / video.name, video), (folder / "long_video.srt", spoken)):
        if not link.is_symlink():
            link.symlink_to(target.resolve())
    return folder / video.name


def _index_generated(cfg: EvalConfig, video: Path) -> tuple[Pipeline, float]:
    from mmrag.evals._index import code_version

    data = video.parent.name
    video = _condition(cfg, video)
    asr = f"-{cfg.asr_model.replace('/', '_')}-b{cfg.asr_beam_size}" if cfg.speech == "asr" else ""
    key = f"{data}-c{cfg.clip_seconds:g}-{cfg.speech}{asr}-{code_version()}"  # stale indexes never reused
    index = Path(cfg.runs) / "long-video" / "index" / key
    pipe = _pipeline(cfg, index)
    t0 = time.perf_counter()
    report = pipe.index([video])
    if report.errors:
        pipe.close()
        raise MMRAGError(f"{video}: indexing failed: {report.errors[0].reason}")
    return pipe, time.perf_counter() - t0


def evaluate(
    cfg: EvalConfig, bench_file: str | Path | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Run the suite; returns the metrics and writes the run folder (and `bench_file`)."""
    from rich.progress import Progress

    from mmrag.generate.loader import load_generator, require_generator

    require_generator(cfg.generator or default_bridge())  # before minutes of video and indexing
    if cfg.tvqa:
        from mmrag.evals.long_video_tvqa import tvqa_items

        items, pipe, index_seconds, facts = tvqa_items(cfg, _pipeline)
    else:
        items, video, facts = generated_items(cfg)
        pipe, index_seconds = _index_generated(cfg, video)
    opts = _options(cfg)
    rows = []
    with pipe:
        t0 = time.perf_counter()
        gen = load_generator(pipe.config.generate)
        load_seconds = time.perf_counter() - t0
        with Progress(disable=not show_progress, transient=True) as progress:
            task = progress.add_task("long-video", total=len(items))
            for item in items:
                rows.append(run_item(pipe, gen, item, opts, cfg.ablations))
                progress.advance(task)
        clips = pipe.store.count()
    metrics = {
        "suite": "long-video",
        "benchmark": "tvqa-long" if cfg.tvqa else "generated",
        "split": "tvqa val" if cfg.tvqa else split_of_seed(cfg.seed),
        "seed": cfg.seed,
        **aggregate(rows),
        **facts,
        "clips_indexed": clips,
        "index_seconds": round(index_seconds, 1),
        "load_seconds": round(load_seconds, 1),
        "protocol": "5 choices scored by likelihood, highest wins; ablations read one source with the same "
        "retrieval; a clip is the ground truth when its midpoint lies in the answer's span",
        "generator": pipe.config.generate.model,
        "options": asdict(opts),
    }
    run = write_run(cfg.runs, "long-video", rows, metrics, markdown(metrics), asdict(cfg))
    metrics["run"] = str(run)
    if bench_file is not None:
        write_json(bench_file, metrics)
    return metrics


__all__ = [
    "EvalConfig",
    "Item",
    "aggregate",
    "default_bridge",
    "evaluate",
    "generated_items",
    "markdown",
    "run_item",
]
