"""`mmrag index`: index files and folders into an index folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmrag.cli.common import guarded, open_pipeline, print_json, stderr_console
from mmrag.cli.options import (
    AsrModelOpt,
    AsrOpt,
    ClipSecondsOpt,
    ConfigOpt,
    ContextualOpt,
    FollowSymlinksOpt,
    IndexOpt,
    JsonOpt,
    MetaOpt,
    PageEncoderOpt,
    PagePoolOpt,
    PdfTablesOpt,
    ProfileOpt,
    ProgressOpt,
    QdrantUrlOpt,
    StrictOpt,
)


@guarded
def index(
    paths: Annotated[
        list[Path],
        typer.Argument(help="Files or folders: images, PDFs, videos, audio, text/JSON corpora."),
    ],
    index: IndexOpt = Path("./mmrag-index"),
    profile: ProfileOpt = None,
    config: ConfigOpt = None,
    qdrant_url: QdrantUrlOpt = None,
    clip_seconds: ClipSecondsOpt = None,
    asr: AsrOpt = None,
    asr_model: AsrModelOpt = None,
    meta: MetaOpt = None,
    contextual: ContextualOpt = None,
    pdf_tables: PdfTablesOpt = None,
    follow_symlinks: FollowSymlinksOpt = None,
    page_encoder: PageEncoderOpt = None,
    page_pool: PagePoolOpt = None,
    strict: StrictOpt = False,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Index images, PDFs (page text and page images), videos (clips), audio (speech) and text.

    Unchanged files are skipped; a rerun after a crash resumes without duplicates. Bad files are
    listed at the end (exit code 1) and everything else is indexed.
    """
    err = stderr_console()
    ingest = {"ingest.clip_seconds": clip_seconds, "ingest.asr": asr, "ingest.asr_model": asr_model}
    ingest |= {"ingest.meta_file": str(meta.resolve()) if meta else None, "ingest.contextual": contextual}
    ingest |= {"ingest.pdf_tables": pdf_tables, "ingest.follow_symlinks": follow_symlinks}
    ingest |= {"encoders.page": page_encoder, "encoders.page_pool": page_pool}
    with open_pipeline(index, profile, config, qdrant_url, **ingest) as pipe:
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
