"""`mmrag search`: hybrid search over an index, with filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import (
    AdaptiveKOpt,
    HubnessOpt,
    IndexOpt,
    JsonOpt,
    QdrantUrlOpt,
    QueryFiltersOpt,
    RerankModelOpt,
    RerankOpt,
    fail,
    guarded,
    open_pipeline,
    print_json,
    retrieval_options,
    stderr_console,
    stdout_console,
)


@guarded
def search(
    query: Annotated[str | None, typer.Argument(help="Text query.")] = None,
    index: IndexOpt = Path("./mmrag-index"),
    k: Annotated[int, typer.Option("-k", "--top-k", help="Hits to return.")] = 10,
    image: Annotated[
        Path | None, typer.Option("--image", help="Image query (searches the image space).", exists=True)
    ] = None,
    modality: Annotated[
        list[str] | None,
        typer.Option(
            "--modality", "-m", help="image, page, video or text (repeatable).", rich_help_panel="Filters"
        ),
    ] = None,
    path: Annotated[str | None, typer.Option(help="Glob over file paths.", rich_help_panel="Filters")] = None,
    pages: Annotated[
        str | None, typer.Option(help="Page range, e.g. 3-5.", rich_help_panel="Filters")
    ] = None,
    time: Annotated[
        str | None, typer.Option(help="Time range in seconds, e.g. 10-60.", rich_help_panel="Filters")
    ] = None,
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    adaptive_k: AdaptiveKOpt = False,
    hubness: HubnessOpt = None,
    query_filters: QueryFiltersOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Search an index by text (hybrid: dense spaces + BM25, fused with RRF) or by image.

    With --json: one object with the hits and how they were found (chosen k, filters, timings).
    """
    if not query and image is None:
        fail("give a text query or --image")
    opts = retrieval_options(rerank, adaptive_k, hubness, query_filters)
    with open_pipeline(index, None, None, qdrant_url, **{"rerank.model": rerank_model}) as pipe:
        res = pipe.retrieve(
            query, image=image, k=k, modality=modality or None, path=path, pages=pages, time=time, **opts
        )
    hits = res.hits
    if json_out:
        out = res.to_dict()
        out["hits"] = [{k_: v for k_, v in h.items() if k_ != "payload"} for h in out["hits"]]
        print_json({"query": query, **out})
        return
    notes = []
    if res.rerank:
        notes.append(f"reranked by {res.rerank}: kept {res.k} of {res.candidates}")
    if res.filters:
        notes.append("filters from the query: " + "; ".join(f"{k_}={v}" for k_, v in res.filters.items()))
    for n in notes:
        stderr_console().print(f"[dim]{n}[/]", highlight=False)
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("#", "score", "modality", "file", "where", "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis")
    for i, h in enumerate(hits, 1):
        snippet = " ".join((h.text or ", ".join(h.payload.get("tags") or [])).split())[:100]
        table.add_row(str(i), f"{h.score:.3f}", h.modality, Path(h.path).name, h.locator(), snippet)
    stdout_console().print(table)
