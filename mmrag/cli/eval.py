"""`mmrag eval ...`: the evaluation suites (one command each; the suites live in `evals/`).

Mount with `app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.common import JsonOpt, guarded, print_json
from mmrag.cli.generate import DEFAULT_BRIDGE, DeviceOpt, GeneratorOpt, NoQuantOpt

eval_app = typer.Typer(help="Evaluation suites.", no_args_is_help=True)


@eval_app.command("easy-vqa")
@guarded
def eval_easy_vqa(
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    questions: Annotated[int, typer.Option(help="Test questions drawn (seeded); 0 for all.")] = 1000,
    seed: Annotated[int, typer.Option()] = 0,
    data: Annotated[Path | None, typer.Option(help="easy-VQA folder holding test/.")] = None,
    runs: Annotated[Path, typer.Option(help="Where run folders go.")] = Path("runs"),
    bench: Annotated[Path | None, typer.Option(help="Also write the summary to this JSON file.")] = None,
    device: DeviceOpt = "auto",
    no_quant: NoQuantOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Accuracy of a bridge on easy-VQA, and of its LLM without the image, in one run."""
    from mmrag.evals.easy_vqa import EvalConfig, evaluate

    cfg = EvalConfig(
        generator=str(Path(generator).expanduser()),
        n_questions=questions,
        seed=seed,
        shared=str(data) if data else None,
        runs=str(runs),
        device=device,
        quantize=False if no_quant else None,
    )
    metrics = evaluate(cfg, bench_file=bench, show_progress=not json_out)
    _show(metrics, json_out)


@eval_app.command("multihop")
@guarded
def eval_multihop(
    split: Annotated[str, typer.Option(help="dev (tune) or test (report).")] = "dev",
    queries: Annotated[
        Path | None, typer.Option(help="Queries in the MultiHopRAG.json schema (default: the shared split).")
    ] = None,
    corpus: Annotated[
        Path | None, typer.Option(help="corpus.json or articles_facts.jsonl (default: the shared evidence).")
    ] = None,
    limit: Annotated[int, typer.Option(help="First N queries only (0: all).")] = 0,
    sweep: Annotated[
        str | None, typer.Option(help="`retrieval`: every retrieval configuration side by side.")
    ] = None,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="Run these configurations (repeatable).")
    ] = None,
    rerank: Annotated[str, typer.Option(help="Reranker of the +rerank configurations.")] = "bi-encoder",
    rerank_model: Annotated[str | None, typer.Option(help="Its model (default: the method's).")] = None,
    decomposer: Annotated[str, typer.Option(help="Sub-queries for +multi-hop: rules or llm.")] = "rules",
    answers: Annotated[
        bool,
        typer.Option(help="Also answer every query, from retrieval and from the gold evidence."),
    ] = False,
    answer_sample: Annotated[
        int, typer.Option(help="With --answers: the first N/4 queries of each question type (0: all).")
    ] = 0,
    report: Annotated[bool, typer.Option(help="Also write report.html into the run folder.")] = False,
    runs: Annotated[Path, typer.Option(help="Where run folders (and the cached index) go.")] = Path("runs"),
    bench: Annotated[
        Path | None, typer.Option(help="Summary JSON (default: bench/results/multihop_<split>.json).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Retrieval on MultiHop-RAG (official metrics): configurations side by side, in one run.

    Default: BM25, dense and hybrid. `--sweep retrieval` adds hubness correction, query filters,
    reranking, adaptive k and multi-hop decomposition.
    """
    from mmrag.evals.multihop import CONFIGS, SWEEP, EvalConfig, evaluate
    from mmrag.types import MMRAGError

    if split not in ("dev", "test"):
        raise MMRAGError(f"unknown split {split!r}: choose dev or test")
    if sweep not in (None, "retrieval"):
        raise MMRAGError(f"unknown sweep {sweep!r}: the one sweep is `retrieval`")
    configs = list(config) if config else list(SWEEP) if sweep else list(CONFIGS)
    cfg = EvalConfig(
        split=split,
        queries=str(queries) if queries else None,
        corpus=str(corpus) if corpus else None,
        limit=limit,
        runs=str(runs),
        configs=configs,
        rerank=rerank,
        rerank_model=rerank_model,
        decomposer=decomposer,
        answers=answers,
        answer_sample=answer_sample,
        report=report,
    )
    name = f"multihop_{split}{'_sweep' if sweep else ''}.json"
    bench_file = bench or (Path("bench") / "results" / name if not limit else None)
    metrics = evaluate(cfg, bench_file=bench_file, show_table=not json_out)
    _show(metrics, json_out)


@eval_app.command("financebench")
@guarded
def eval_financebench(
    questions: Annotated[
        Path | None, typer.Option(help="FinanceBench JSONL (default: the shared 62-question sample).")
    ] = None,
    pdfs: Annotated[
        Path | None, typer.Option(help="Folder of <doc_name>.pdf (default: the shared PDFs).")
    ] = None,
    doc: Annotated[
        list[str] | None,
        typer.Option("--doc", help="Index only this document (repeatable), ask its questions."),
    ] = None,
    limit: Annotated[int, typer.Option(help="First N questions only (0: all).")] = 0,
    config: Annotated[
        list[str] | None, typer.Option("--config", "-c", help="Run these configurations (repeatable).")
    ] = None,
    profile: Annotated[str, typer.Option(help="Model profile that indexes the PDFs.")] = "offline",
    image_model: Annotated[
        str | None, typer.Option(help="Image encoder override (a CLIP/SigLIP id or folder).")
    ] = None,
    answers: Annotated[
        bool, typer.Option(help="Also generate answers (slow), from retrieval and from the gold pages.")
    ] = False,
    runs: Annotated[Path, typer.Option(help="Where run folders (and the cached index) go.")] = Path("runs"),
    bench: Annotated[
        Path | None, typer.Option(help="Summary JSON (default: bench/results/financebench.json).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Page-level retrieval on FinanceBench: BM25, dense text, page images and hybrid side by side."""
    from mmrag.evals.financebench import CONFIGS, EvalConfig, evaluate

    cfg = EvalConfig(
        questions=str(questions) if questions else None,
        pdfs=str(pdfs) if pdfs else None,
        docs=list(doc) if doc else None,
        limit=limit,
        profile=profile,
        image_model=image_model,
        runs=str(runs),
        configs=list(config) if config else list(CONFIGS),
        answers=answers,
    )
    subset = limit or doc or questions or pdfs
    bench_file = bench or (Path("bench") / "results" / "financebench.json" if not subset else None)
    metrics = evaluate(cfg, bench_file=bench_file, show_table=not json_out)
    _show(metrics, json_out)


@eval_app.command("clip8")
@guarded
def eval_clip8(
    image_model: Annotated[
        str | None, typer.Option(help="Image encoder with a text side: a CLIP/SigLIP id or folder.")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Model profile (offline has no text-aligned images).")
    ] = "offline",
    tag_baseline: Annotated[
        bool, typer.Option(help="Also report the ImageNet-tag text baseline (labelled as such).")
    ] = False,
    data: Annotated[Path | None, typer.Option(help="Folder with captions.json and the images.")] = None,
    runs: Annotated[Path, typer.Option(help="Where run folders (and the cached index) go.")] = Path("runs"),
    bench: Annotated[
        Path | None, typer.Option(help="Summary JSON (default: bench/results/clip8.json on the shared data).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Text-to-image top-1 on the eight captions of the CLIP demo; needs a text-aligned image encoder."""
    from mmrag.evals.clip8 import EvalConfig, evaluate

    cfg = EvalConfig(
        data=str(data) if data else None,
        profile=profile,
        image_model=image_model,
        tag_baseline=tag_baseline,
        runs=str(runs),
    )
    bench_file = bench or (Path("bench") / "results" / "clip8.json" if data is None else None)
    metrics = evaluate(cfg, bench_file=bench_file, show_table=not json_out)
    _show(metrics, json_out)


@eval_app.command("long-video")
@guarded
def eval_long_video(
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    questions: Annotated[
        int, typer.Option(help="Questions drawn (seeded, balanced over kinds); 0: all.")
    ] = 60,
    seed: Annotated[int, typer.Option(help="Seed of the generated video and of the question draw.")] = 0,
    minutes: Annotated[float, typer.Option(help="Length of the generated video.")] = 21.0,
    frames: Annotated[int, typer.Option(help="Frame budget per question, split across the clips.")] = 8,
    context_clips: Annotated[int, typer.Option(help="Retrieved clips the generator reads.")] = 1,
    fusion: Annotated[
        str, typer.Option(help="auto, joint (one prompt) or late (per clip and source).")
    ] = "auto",
    tvqa: Annotated[
        Path | None, typer.Option(help="TVQA-long tvqa_val_edited.json: run TVQA-long instead.", exists=True)
    ] = None,
    tvqa_subtitles: Annotated[
        Path | None, typer.Option(help="TVQA tvqa_preprocessed_subtitles.json.", exists=True)
    ] = None,
    tvqa_frames: Annotated[Path | None, typer.Option(help="TVQA frames root (frames_hq/).")] = None,
    episodes: Annotated[int, typer.Option(help="TVQA-long: first N episodes (0: all).")] = 0,
    runs: Annotated[Path, typer.Option(help="Where run folders (and the cached video and index) go.")] = Path(
        "runs"
    ),
    bench: Annotated[
        Path | None, typer.Option(help="Summary JSON (default: bench/results/long_video[_tvqa].json).")
    ] = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Long-video QA: clip retrieval and 5-choice accuracy, with subtitles-only and frames-only ablations.

    By default on a generated 21-minute video with subtitles (cached under runs/long-video/).
    """
    from mmrag.evals.long_video import EvalConfig, evaluate

    cfg = EvalConfig(
        generator=str(Path(generator).expanduser()),
        questions=questions,
        seed=seed,
        minutes=minutes,
        frames=frames,
        context_clips=context_clips,
        fusion=fusion,
        runs=str(runs),
        device=device,
        tvqa=str(tvqa) if tvqa else None,
        tvqa_subtitles=str(tvqa_subtitles) if tvqa_subtitles else None,
        tvqa_frames=str(tvqa_frames) if tvqa_frames else None,
        episodes=episodes,
    )
    name = "long_video_tvqa.json" if tvqa else "long_video.json"
    metrics = evaluate(cfg, bench_file=bench or Path("bench") / "results" / name, show_progress=not json_out)
    _show(metrics, json_out)


def _show(metrics: dict[str, Any], json_out: bool) -> None:
    """A run's metrics: the JSON, or its `metrics.md` and where the run folder is."""
    if json_out:
        print_json(metrics)
        return
    typer.echo((Path(metrics["run"]) / "metrics.md").read_text(encoding="utf-8"))
    typer.echo(f"run folder: {metrics['run']}")
