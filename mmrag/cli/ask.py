"""`mmrag ask`: retrieve from an index, then answer with citations, streaming to the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import (
    IndexOpt,
    JsonOpt,
    QdrantUrlOpt,
    guarded,
    open_pipeline,
    print_json,
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
    qdrant_url: QdrantUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Answer a question from an index: retrieve, pack the context, generate with citations.

    The answer streams to stdout as it is generated, then its sources are listed with their scores and
    locators (page, time range). With --json, one JSON object (answer, sources, timings) instead.
    """
    overrides = {
        "generate.model": generator,
        "generate.quantize": False if no_quant else None,
        "generate.max_new_tokens": max_new_tokens,
    }
    with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
        stream = None if json_out else (lambda piece: (sys.stdout.write(piece), sys.stdout.flush()))
        ans = pipe.ask(question, images=image or None, k=k, modality=modality or None, on_token=stream)
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
