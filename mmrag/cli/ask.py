"""`mmrag ask`: retrieve from an index, then answer with citations, streaming to the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.common import (
    AdaptiveKOpt,
    HubnessOpt,
    IndexOpt,
    JsonOpt,
    QdrantUrlOpt,
    QueryFiltersOpt,
    RerankOpt,
    guarded,
    open_pipeline,
    print_json,
    retrieval_options,
    stdout_console,
)


@guarded
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt = Path("./mmrag-index"),
    k: Annotated[int, typer.Option("-k", "--top-k", help="Hits given to the generator.")] = 5,
    image: Annotated[
        list[Path] | None,
        typer.Option("--image", help="Query image (repeatable).", exists=True, dir_okay=False),
    ] = None,
    modality: Annotated[
        list[str] | None, typer.Option("--modality", "-m", help="Retrieve only these modalities.")
    ] = None,
    generator: Annotated[
        str | None,
        typer.Option(
            "--generator",
            "-g",
            help="VLM/LLM hub id or folder, `smollm2-135m`, or a bridge folder.",
            envvar="MMRAG_GENERATOR",
            rich_help_panel="Model",
        ),
    ] = None,
    no_quant: Annotated[
        bool, typer.Option("--no-quant", help="Load the LLM unquantised.", rich_help_panel="Model")
    ] = False,
    max_new_tokens: Annotated[int | None, typer.Option(help="Upper bound on generated tokens.")] = None,
    video: Annotated[
        str | None,
        typer.Option(
            "--video",
            help="Ask about a video (path or glob, e.g. episode01.mkv): answer from its retrieved clips.",
            rich_help_panel="Video",
        ),
    ] = None,
    choice: Annotated[
        list[str] | None,
        typer.Option(
            "--choice",
            help="A candidate answer (repeatable): each is scored by likelihood and the best wins.",
            rich_help_panel="Video",
        ),
    ] = None,
    multi_hop: Annotated[
        bool,
        typer.Option(
            "--multi-hop", help="Split the question into sub-queries, retrieve each, answer from the union."
        ),
    ] = False,
    iterative: Annotated[
        bool, typer.Option("--iterative", help="Multi-hop by rounds: retrieve, read, ask the next query.")
    ] = False,
    rerank: RerankOpt = None,
    adaptive_k: AdaptiveKOpt = False,
    hubness: HubnessOpt = None,
    query_filters: QueryFiltersOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question from an index: retrieve, pack the context, generate with citations.

    The answer streams to stdout as it is generated, then its sources are listed with their scores and
    locators (page, time range). With --json, one JSON object (answer, sources, timings) instead.

    With --video and/or --choice the question is about video clips: the relevant clips are
    retrieved, frames and subtitles go to the generator, and the answer names the clips it used
    (HH:MM:SS–HH:MM:SS). With --choice, the likeliest choice is the answer.
    """
    overrides = {
        "generate.model": generator,
        "generate.quantize": False if no_quant else None,
        "generate.max_new_tokens": max_new_tokens,
    }
    if video is not None or choice:
        _ask_video(question, index, qdrant_url, overrides, video, choice or None, k, json_out)
        return
    with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
        stream = None if json_out else (lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
        ans = pipe.ask(
            question,
            images=image or None,
            k=k,
            modality=modality or None,
            on_token=stream,
            multi_hop="iterative" if iterative else "decompose" if multi_hop else None,
            **retrieval_options(rerank, adaptive_k, hubness, query_filters),
        )
    if json_out:
        print_json(ans.to_dict())
        return
    con = stdout_console()
    con.print()
    con.print("[bold]Sources[/]" + (f" (cited: {', '.join(map(str, ans.cited))})" if ans.cited else ""))
    for s in ans.sources:
        h = s.hit
        mark = "*" if s.label in ans.cited else " "
        img = " [image]" if s.used_image else ""
        con.print(
            f"{mark}[{s.label}] {h.score:.3f} {h.modality:5s} {h.path} {s.locator()}{img}", highlight=False
        )
    t = ans.timings
    con.print(
        f"[dim]{ans.model}: retrieve {t['retrieve']:.2f}s, load {t['load']:.2f}s, "
        f"generate {t['generate']:.2f}s[/]",
        highlight=False,
    )


def _ask_video(
    question: str,
    index: Path,
    qdrant_url: str | None,
    overrides: dict[str, Any],
    video: str | None,
    choices: list[str] | None,
    k: int,
    json_out: bool,
) -> None:
    with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
        ans = pipe.ask(question, video=video, choices=choices, k=k, on_token=None if json_out else _echo)
    if json_out:
        print_json(ans.to_dict())
        return
    con = stdout_console()
    if choices:
        con.print(ans.answer, highlight=False)
        assert ans.scores is not None
        for i, (text, score) in enumerate(zip(choices, ans.scores, strict=True)):
            con.print(f"{'*' if i == ans.chosen else ' '} {score:8.3f}  {text}", highlight=False)
    else:
        con.print()
    con.print("[bold]Clips[/]")
    for c in ans.clips:
        role = f"#{c.rank}" if c.rank is not None else f"next to #{c.neighbour_of}"
        con.print(f"  {Path(c.hit.path).name} {c.span}  {role}, {c.n_frames} frames", highlight=False)
    t = ans.timings
    con.print(
        f"[dim]{ans.model}: retrieve {t['retrieve']:.2f}s, load {t['load']:.2f}s, "
        f"answer {t['answer']:.2f}s[/]",
        highlight=False,
    )


def _echo(piece: str) -> None:
    sys.stdout.write(piece)
    sys.stdout.flush()
