"""`mmrag eval ...`: the evaluation suites (one command each; the suites live in `evals/`).

Mount with `app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import typer

from mmrag.cli.common import guarded, print_json
from mmrag.cli.options import (
    DEFAULT_BRIDGE,
    DeviceOpt,
    GeneratorOpt,
    JsonOpt,
    MaxNewTokensOpt,
    ProfileOpt,
    QuantOpt,
    RerankModelOpt,
    RerankOpt,
)
from mmrag.cli.options_eval import (
    AnswerSampleOpt,
    AnswersOpt,
    BenchOpt,
    ConfigsOpt,
    ContextClipsOpt,
    CorpusOpt,
    DataOpt,
    DecomposerOpt,
    DocOpt,
    EpisodesOpt,
    FramesOpt,
    FusionOpt,
    ImageModelOpt,
    LimitOpt,
    MinutesOpt,
    PdfsOpt,
    QueriesOpt,
    QuestionsOpt,
    ReportOpt,
    RunsOpt,
    SeedOpt,
    SplitOpt,
    SweepOpt,
    TagBaselineOpt,
    TextScoringOpt,
    TvqaFramesOpt,
    TvqaOpt,
    TvqaSubtitlesOpt,
)

eval_app = typer.Typer(help="Evaluation suites.", no_args_is_help=True)

RESULTS = Path("bench") / "results"
"""Where a full run's summary goes unless `--bench` names another file."""


@eval_app.command("easy-vqa")
@guarded
def eval_easy_vqa(
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    questions: QuestionsOpt = "1000",
    seed: SeedOpt = 0,
    data: DataOpt = None,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    device: DeviceOpt = "auto",
    quant: QuantOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Accuracy of a bridge on easy-VQA, and of its LLM without the image, in one run."""
    from mmrag.evals.easy_vqa import EvalConfig, evaluate

    cfg = EvalConfig(
        generator=str(Path(generator or DEFAULT_BRIDGE).expanduser()),
        n_questions=_count(questions, 1000),
        seed=seed,
        shared=_path(data),
        runs=str(runs),
        device=device,
        quantize=quant,
    )
    _run(evaluate, cfg, json_out, bench, None, show="show_progress")


@eval_app.command("multihop")
@guarded
def eval_multihop(
    split: SplitOpt = "dev",
    queries: QueriesOpt = None,
    corpus: CorpusOpt = None,
    limit: LimitOpt = 0,
    sweep: SweepOpt = None,
    configs: ConfigsOpt = None,
    rerank: RerankOpt = "bi-encoder",
    rerank_model: RerankModelOpt = None,
    decomposer: DecomposerOpt = "rules",
    answers: AnswersOpt = False,
    answer_sample: AnswerSampleOpt = 0,
    report: ReportOpt = False,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Retrieval on MultiHop-RAG (official metrics): configurations side by side, in one run.

    Default: BM25, dense and hybrid. `--sweep retrieval` adds hubness correction, query filters,
    reranking, adaptive k and multi-hop decomposition; `--configs` names the configurations to run.
    `--rerank` (and `--rerank-model`) choose the reranker of the +rerank configurations.
    """
    from mmrag.evals.multihop import CONFIGS, SWEEP, EvalConfig, evaluate

    _choose("split", split, ("dev", "test"))
    if sweep is not None:
        _choose("sweep", sweep, ("retrieval",))
    configs = list(configs) if configs else list(SWEEP) if sweep else list(CONFIGS)
    cfg = EvalConfig(
        split=split,
        queries=_path(queries),
        corpus=_path(corpus),
        limit=limit,
        runs=str(runs),
        configs=configs,
        rerank=rerank or "bi-encoder",
        rerank_model=rerank_model,
        decomposer=decomposer,
        answers=answers,
        answer_sample=answer_sample,
        report=report,
    )
    name = f"multihop_{split}{'_sweep' if sweep else ''}.json"
    _run(evaluate, cfg, json_out, bench, None if limit else name)


@eval_app.command("answers")
@guarded
def eval_answers(
    split: SplitOpt = "test",
    answer_sample: AnswerSampleOpt = 8,
    queries: QueriesOpt = None,
    corpus: CorpusOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer quality on MultiHop-RAG: accuracy (retrieved and gold evidence), loops, citations,
    refusals on null queries, duplicated sources and time per answer, before and after loop stopping.

    The default sample (8 queries, 2 of each type) fits CI; `--answer-sample 0` answers the whole split.
    """
    from mmrag.evals.answers import EvalConfig, evaluate

    _choose("split", split, ("dev", "test"))
    cfg = EvalConfig(
        split=split, queries=_path(queries), corpus=_path(corpus), sample=answer_sample, runs=str(runs)
    )
    if max_new_tokens:
        cfg.max_new_tokens = max_new_tokens
    name = f"answers_{split}{'_full' if not answer_sample else ''}.json"
    _run(evaluate, cfg, json_out, bench, None if queries or corpus else name)


@eval_app.command("financebench")
@guarded
def eval_financebench(
    questions: QuestionsOpt = None,
    pdfs: PdfsOpt = None,
    doc: DocOpt = None,
    limit: LimitOpt = 0,
    configs: ConfigsOpt = None,
    split: SplitOpt = "all",
    profile: ProfileOpt = "offline",
    image_model: ImageModelOpt = None,
    answers: AnswersOpt = False,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Page-level retrieval on FinanceBench: BM25, dense text, page images and hybrid, then one row per
    component on top of hybrid (contextual chunks, routing, page ranking, two-stage).

    `--split dev` or `test` asks one fixed half of the questions (stratified by question type), `all`
    every question. `--image-model none` skips the image tower (no text question reaches it offline).
    """
    from mmrag.evals.financebench import evaluate
    from mmrag.evals.financebench_data import DEFAULT_CONFIGS, EvalConfig

    cfg = EvalConfig(
        questions=_path(questions),
        pdfs=_path(pdfs),
        docs=list(doc) if doc else None,
        limit=limit,
        profile=profile or "offline",
        image_model=image_model,
        runs=str(runs),
        configs=list(configs) if configs else list(DEFAULT_CONFIGS),
        split=split,
        answers=answers,
    )
    subset = limit or doc or questions or pdfs
    name = "financebench.json" if split == "all" else f"financebench_{split}.json"
    _run(evaluate, cfg, json_out, bench, None if subset else name)


@eval_app.command("clip8")
@guarded
def eval_clip8(
    image_model: ImageModelOpt = None,
    profile: ProfileOpt = "offline",
    tag_baseline: TagBaselineOpt = False,
    data: DataOpt = None,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Text-to-image top-1 on the eight captions of the CLIP demo; needs a text-aligned image encoder."""
    from mmrag.evals.clip8 import EvalConfig, evaluate

    cfg = EvalConfig(
        data=_path(data),
        profile=profile or "offline",
        image_model=image_model,
        tag_baseline=tag_baseline,
        runs=str(runs),
    )
    _run(evaluate, cfg, json_out, bench, "clip8.json" if data is None else None)


@eval_app.command("long-video")
@guarded
def eval_long_video(
    generator: GeneratorOpt = DEFAULT_BRIDGE,
    questions: QuestionsOpt = "60",
    seed: SeedOpt = 0,
    split: SplitOpt = "",
    minutes: MinutesOpt = 21.0,
    frames: FramesOpt = 8,
    context_clips: ContextClipsOpt = 1,
    fusion: FusionOpt = "auto",
    text_scoring: TextScoringOpt = "pmi",
    tvqa: TvqaOpt = None,
    tvqa_subtitles: TvqaSubtitlesOpt = None,
    tvqa_frames: TvqaFramesOpt = None,
    episodes: EpisodesOpt = 0,
    runs: RunsOpt = Path("runs"),
    bench: BenchOpt = None,
    device: DeviceOpt = "auto",
    json_out: JsonOpt = False,
) -> None:
    """Long-video QA: clip retrieval and 5-choice accuracy, with subtitles-only and frames-only ablations.

    By default on a generated 21-minute video with subtitles (cached under runs/long-video/).
    `--split dev` is seed 0 (where the settings were chosen), `--split test` seed 1 (report this one).
    """
    from mmrag.evals.long_video import EvalConfig, evaluate
    from mmrag.evals.long_video_config import SPLIT_SEEDS

    if split:
        seed = SPLIT_SEEDS[_choose("split", split, tuple(SPLIT_SEEDS))]
    cfg = EvalConfig(
        generator=str(Path(generator or DEFAULT_BRIDGE).expanduser()),
        questions=_count(questions, 60),
        seed=seed,
        minutes=minutes,
        frames=frames,
        context_clips=context_clips,
        fusion=fusion,
        text_scoring=text_scoring,
        runs=str(runs),
        device=device,
        tvqa=_path(tvqa, expand=False),
        tvqa_subtitles=_path(tvqa_subtitles, expand=False),
        tvqa_frames=_path(tvqa_frames, expand=False),
        episodes=episodes,
    )
    name = "long_video_tvqa.json" if tvqa else "long_video.json"
    _run(evaluate, cfg, json_out, bench, name, show="show_progress")


def _count(questions: str | None, default: int) -> int:
    """`--questions` as a number of questions to draw (financebench alone reads it as a file)."""
    from mmrag.types import MMRAGError

    if questions is None:
        return default
    try:
        n = int(questions)
    except ValueError:
        raise MMRAGError(
            f"--questions takes a number of questions here (0: all), not {questions!r}"
        ) from None
    if n < 0:
        raise MMRAGError(f"--questions takes a number of questions here (0: all), not {n}")
    return n


def _choose(option: str, value: str, allowed: Sequence[str]) -> str:
    """`value` when it is one of `allowed`; else the usage error naming them."""
    from mmrag.types import MMRAGError

    if value in allowed:
        return value
    if len(allowed) == 1:
        raise MMRAGError(f"unknown {option} {value!r}: the one {option} is `{allowed[0]}`")
    choices = " or ".join(allowed) if len(allowed) == 2 else "from " + ", ".join(allowed)
    raise MMRAGError(f"unknown {option} {value!r}: choose {choices}")


def _path(value: str | Path | None, expand: bool = True) -> str | None:
    """An optional path option as the string a suite's config holds (`~` expanded unless told not to)."""
    if not value:
        return None
    return str(Path(value).expanduser()) if expand else str(value)


def _run(
    evaluate: Callable[..., dict[str, Any]],
    cfg: Any,
    json_out: bool,
    bench: Path | None,
    result: str | None,
    show: str = "show_table",
) -> None:
    """Run a suite and show its metrics: the one tail every `mmrag eval` command shares.

    The summary goes to `--bench`, else to `bench/results/<result>`; `result` None (a run on a subset,
    or a suite that writes none unless asked) writes none. `show` is the suite's switch for its live
    table or progress bar, off with `--json` so stdout holds the JSON alone.
    """
    bench_file = bench or (RESULTS / result if result else None)
    metrics = evaluate(cfg, bench_file=bench_file, **{show: not json_out})
    _show(metrics, json_out)


def _show(metrics: dict[str, Any], json_out: bool) -> None:
    """A run's metrics: the JSON, or its `metrics.md` and where the run folder is."""
    if json_out:
        print_json(metrics)
        return
    typer.echo((Path(metrics["run"]) / "metrics.md").read_text(encoding="utf-8"))
    typer.echo(f"run folder: {metrics['run']}")
