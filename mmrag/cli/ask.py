"""`mmrag ask`: retrieve from an index, then answer with citations, streaming to the terminal."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.cli.common import fail, guarded, open_pipeline, print_json, shown_path, stdout_console
from mmrag.cli.options import (
    AdaptiveKOpt,
    ChoiceOpt,
    GeneratorOpt,
    GroupOpt,
    HubnessOpt,
    ImageOpt,
    IndexOpt,
    IterativeOpt,
    JsonOpt,
    LocalOpt,
    MaxNewTokensOpt,
    ModalityOpt,
    MultiHopOpt,
    QdrantUrlOpt,
    QuantOpt,
    QueryFiltersOpt,
    RerankOpt,
    RouteOpt,
    StopRepeatOpt,
    TopKOpt,
    VideoOpt,
    retrieval_options,
)
from mmrag.cli.remote import ServerGone, server_for


@guarded
def ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    index: IndexOpt = Path("./mmrag-index"),
    k: TopKOpt = 5,
    image: ImageOpt = None,
    modality: ModalityOpt = None,
    generator: GeneratorOpt = None,
    quant: QuantOpt = None,
    max_new_tokens: MaxNewTokensOpt = None,
    stop_on_repetition: StopRepeatOpt = None,
    video: VideoOpt = None,
    choice: ChoiceOpt = None,
    multi_hop: MultiHopOpt = False,
    iterative: IterativeOpt = False,
    rerank: RerankOpt = None,
    adaptive_k: AdaptiveKOpt = False,
    hubness: HubnessOpt = None,
    query_filters: QueryFiltersOpt = None,
    route: RouteOpt = None,
    group: GroupOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Answer a question from an index: retrieve, pack the context, generate with citations.

    The answer streams to stdout as it is generated, then its sources are listed with their scores and
    locators (page, time range). With --json, one JSON object (answer, sources, timings) instead.

    With --video and/or --choice the question is about video clips: the relevant clips are
    retrieved, frames and subtitles go to the generator, and the answer names the clips it used
    (HH:MM:SS–HH:MM:SS). With --choice, the likeliest choice is the answer.

    When an mmrag serve holds the index, the question goes to it (its models are loaded already) and
    the answer streams back; --local answers in this process.
    """
    overrides = {
        "generate.model": generator,
        "generate.quantize": quant,
        "generate.max_new_tokens": max_new_tokens,
        "generate.stop_on_repetition": stop_on_repetition,
    }
    remote = server_for(index, local)
    if remote is not None:
        given = "--video/--choice" if video is not None or choice else "--image" if image else ""
        given = given or ("generator options" if any(v is not None for v in overrides.values()) else "")
        if given:
            fail(f"mmrag serve holds {index} and answers with its own generator: {given} cannot go to it")
    if video is not None or choice:
        _ask_video(question, index, qdrant_url, overrides, video, choice or None, k, json_out)
        return
    stream = None if json_out else _echo
    hop = "iterative" if iterative else "decompose" if multi_hop else None
    opts = retrieval_options(rerank, adaptive_k, hubness, query_filters, route, group)
    ans = None
    if remote is not None:
        try:
            sent = opts | ({"multi_hop": hop} if hop else {}) | ({"modality": modality} if modality else {})
            ans = remote.ask(question, k, sent, stream)
        except ServerGone:
            ans = None  # a server file that outlived its server: open the index here
    if ans is None:
        with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
            imgs, mods = image or None, modality or None
            ans = pipe.ask(question, images=imgs, k=k, modality=mods, on_token=stream, multi_hop=hop, **opts)
    if json_out:
        print_json(ans.to_dict())
        return
    con = stdout_console()
    con.print()
    _print_sources(con, ans)
    t = ans.timings
    con.print(
        f"[dim]{ans.model}: retrieve {t['retrieve']:.2f}s, load {t['load']:.2f}s, "
        f"generate {t['generate']:.2f}s[/]",
        highlight=False,
    )


def _print_sources(con: Any, ans: Any) -> None:
    """Sources with their labels as links (`file://...#page=4`, `#t=12,22`); cited ones starred,
    labels the answer cites without a source and sentences without a label flagged."""
    from rich.markup import escape

    from mmrag.answer.cite import source_uri

    c = ans.citations()
    con.print("[bold]Sources[/]" + (f" (cited: {', '.join(map(str, c.cited))})" if c.cited else ""))
    for s in ans.sources:
        h = s.hit
        uri = source_uri(h.path, h.page, h.t_start, h.t_end)
        mark = "*" if s.label in c.cited else " "
        img = " \\[image]" if s.used_image else ""
        con.print(
            f"{mark}[link={uri}]\\[{s.label}][/link] {h.score:.3f} {h.modality:5s} "
            f"[link={uri}]{escape(shown_path(h.path))}[/link] {s.locator()}{img}",
            highlight=False,
        )
    if c.invalid:
        bad = ", ".join(f"\\[{n}]" for n in c.invalid)
        con.print(f"[yellow]cited without a source: {bad}[/]", highlight=False)
    if c.uncited_sentences:
        con.print(f"[dim]{len(c.uncited_sentences)} sentence(s) cite no source[/]", highlight=False)


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
