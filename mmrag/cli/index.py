"""`mmrag index`: index files and folders into an index folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import (
    ConfigOpt,
    IndexOpt,
    JsonOpt,
    ProfileOpt,
    QdrantUrlOpt,
    guarded,
    open_pipeline,
    print_json,
    stderr_console,
)


@guarded
def index(
    paths: Annotated[
        list[Path], typer.Argument(help="Files or folders: images, PDFs, videos, text/JSON corpora.")
    ],
    index: IndexOpt = Path("./mmrag-index"),
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    clip_seconds: Annotated[
        float | None, typer.Option(help="Video clip length in seconds.", rich_help_panel="Ingest")
    ] = None,
    strict: Annotated[bool, typer.Option("--strict", help="Stop at the first bad file.")] = False,
    progress: Annotated[bool, typer.Option(help="Progress bar on stderr.")] = True,
    json_out: JsonOpt = False,
) -> None:
    """Index images, PDFs (page text and page images), videos (clips) and text into an index folder.

    Unchanged files are skipped; a rerun after a crash resumes without duplicates. Bad files are
    listed at the end (exit code 1) and everything else is indexed.
    """
    err = stderr_console()
    with open_pipeline(index, profile, config, qdrant_url, **{"ingest.clip_seconds": clip_seconds}) as pipe:
        report = pipe.index(paths, progress=progress and not json_out, strict=strict)
        points = pipe.store.count()
    if json_out:
        print_json({**report.to_dict(), "points_total": points, "index": str(Path(index).resolve())})
    else:
        err.print(
            f"[bold]indexed[/] {report.files_indexed} files, skipped {report.files_skipped} unchanged, "
            f"{len(report.errors)} failed; wrote {report.points_written} points "
            f"({points} in the index) in {report.seconds:.1f}s",
            highlight=False,
        )
        from rich.markup import escape

        for e in report.ignored:
            err.print(f"[dim]ignored {escape(e.path)}: {escape(e.reason)}[/]", highlight=False, markup=True)
        for e in report.errors:  # a file name may hold brackets: escape it, never parse it as markup
            err.print(f"[red]failed[/] {escape(e.path)}: {escape(e.reason)}", highlight=False, markup=True)
    if report.errors:
        raise typer.Exit(1)
