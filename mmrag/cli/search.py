"""`mmrag search`: hybrid search over an index, with filters."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import fail, guarded, open_pipeline, print_json, stderr_console, stdout_console
from mmrag.cli.options import (
    AdaptiveKOpt,
    GroupOpt,
    HubnessOpt,
    ImageOpt,
    IndexOpt,
    JsonOpt,
    LocalOpt,
    ModalityOpt,
    PagesOpt,
    PathGlobOpt,
    QdrantUrlOpt,
    QueryFiltersOpt,
    RerankModelOpt,
    RerankOpt,
    RouteOpt,
    TimeOpt,
    TopKOpt,
    retrieval_options,
)
from mmrag.cli.remote import ServerGone, server_for


@guarded
def search(
    query: Annotated[str | None, typer.Argument(help="Text query.")] = None,
    index: IndexOpt = Path("./mmrag-index"),
    k: TopKOpt = 10,
    image: ImageOpt = None,
    modality: ModalityOpt = None,
    path: PathGlobOpt = None,
    pages: PagesOpt = None,
    time: TimeOpt = None,
    rerank: RerankOpt = None,
    rerank_model: RerankModelOpt = None,
    adaptive_k: AdaptiveKOpt = False,
    hubness: HubnessOpt = None,
    query_filters: QueryFiltersOpt = None,
    route: RouteOpt = None,
    group: GroupOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Search an index by text (hybrid: dense spaces + BM25, fused with RRF) or by image.

    With --json: one object with the hits and how they were found (chosen k, filters, timings).
    When an mmrag serve holds the index, the search runs in it (--local: in this process).
    """
    if not query and not image:
        fail("give a text query or --image")
    if image and len(image) > 1:
        fail("mmrag search takes one --image (mmrag ask takes several)")
    opts = retrieval_options(rerank, adaptive_k, hubness, query_filters, route, group)
    query_image = image[0] if image else None
    filters = {"modality": modality or None, "path": path, "pages": pages, "time": time}
    res = None
    remote = server_for(index, local)
    if remote is not None:
        if query_image or rerank_model:
            given = "--image" if query_image else "--rerank-model"
            fail(f"mmrag serve holds {index}: {given} does not go through it (stop it to use {given})")
        try:
            assert query is not None
            res = remote.retrieve(query, k, {n: v for n, v in filters.items() if v} | opts)
        except ServerGone:
            res = None  # a server file that outlived its server: open the index here
    if res is None:
        with open_pipeline(index, None, None, qdrant_url, **{"rerank.model": rerank_model}) as pipe:
            res = pipe.retrieve(query, image=query_image, k=k, **filters, **opts)
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

    from mmrag.retrieve.route import doc_label

    table = Table(show_lines=False)
    for col in ("#", "score", "modality", "file", "document", "where", "text"):
        table.add_column(col, overflow="fold" if col == "text" else "ellipsis")
    for i, h in enumerate(hits, 1):
        snippet = " ".join((h.text or ", ".join(h.payload.get("tags") or [])).split())[:100]
        doc = doc_label(h.payload)
        table.add_row(str(i), f"{h.score:.3f}", h.modality, Path(h.path).name, doc, h.locator(), snippet)
    stdout_console().print(table)
