"""`mmrag eval ...`: the evaluation suites (one command each; the suites live in `evals/`).

Mount with `app.add_typer(eval_app, name="eval")`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
    if json_out:
        print_json(metrics)
        return
    typer.echo((Path(metrics["run"]) / "metrics.md").read_text(encoding="utf-8"))
    typer.echo(f"run folder: {metrics['run']}")


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
    runs: Annotated[Path, typer.Option(help="Where run folders (and the cached index) go.")] = Path("runs"),
    bench: Annotated[
        Path | None, typer.Option(help="Summary JSON (default: bench/results/multihop_<split>.json).")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Retrieval on MultiHop-RAG (official metrics): BM25, dense and hybrid side by side, in one run."""
    from mmrag.evals.multihop import EvalConfig, evaluate
    from mmrag.types import MMRAGError

    if split not in ("dev", "test"):
        raise MMRAGError(f"unknown split {split!r}: choose dev or test")
    cfg = EvalConfig(
        split=split,
        queries=str(queries) if queries else None,
        corpus=str(corpus) if corpus else None,
        limit=limit,
        runs=str(runs),
    )
    bench_file = bench or (Path("bench") / "results" / f"multihop_{split}.json" if not limit else None)
    metrics = evaluate(cfg, bench_file=bench_file, show_table=not json_out)
    if json_out:
        print_json(metrics)
        return
    typer.echo((Path(metrics["run"]) / "metrics.md").read_text(encoding="utf-8"))
    typer.echo(f"run folder: {metrics['run']}")
