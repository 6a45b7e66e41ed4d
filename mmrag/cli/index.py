"""`mmrag index`: index files and folders into an index folder."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mmrag.cli.common import fail, guarded, open_pipeline, print_json, print_report, stderr_console
from mmrag.cli.options import (
    AsrModelOpt,
    AsrOpt,
    ClipSecondsOpt,
    ConfigOpt,
    ContextualOpt,
    FollowSymlinksOpt,
    IndexOpt,
    JsonOpt,
    LocalOpt,
    MetaOpt,
    PageEncoderOpt,
    PagePoolOpt,
    PdfTablesOpt,
    ProfileOpt,
    ProgressOpt,
    QdrantUrlOpt,
    StrictOpt,
)
from mmrag.cli.remote import Remote, ServerGone, server_for

if TYPE_CHECKING:
    from mmrag.types import IndexReport


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
    local: LocalOpt = False,
) -> None:
    """Index images, PDFs (page text and page images), videos (clips), audio (speech) and text.

    Unchanged files are skipped; a rerun after a crash resumes without duplicates. Bad files are
    listed at the end (exit code 1) and everything else is indexed. When an mmrag serve holds the
    index, the server indexes the files (file by file, answering searches in between) and this
    command shows its progress and returns once they are searchable (--local: in this process).
    """
    err = stderr_console()
    ingest = {"ingest.clip_seconds": clip_seconds, "ingest.asr": asr, "ingest.asr_model": asr_model}
    ingest |= {"ingest.meta_file": str(meta.resolve()) if meta else None, "ingest.contextual": contextual}
    ingest |= {"ingest.pdf_tables": pdf_tables, "ingest.follow_symlinks": follow_symlinks}
    ingest |= {"encoders.page": page_encoder, "encoders.page_pool": page_pool}
    report, points = None, 0
    remote = server_for(index, local)
    if remote is not None:
        given = [k for k, v in ingest.items() if v is not None and k != "ingest.follow_symlinks"]
        if given or profile or config or qdrant_url:
            fail(f"mmrag serve holds {index} and indexes with its own settings; drop the ingest options")
        try:
            bar = progress and not json_out
            report, points = _through_server(remote, paths, strict, follow_symlinks, bar)
        except ServerGone:
            report = None  # a server file that outlived its server: open the index here
    if report is None:
        with open_pipeline(index, profile, config, qdrant_url, **ingest) as pipe:
            report = pipe.index(paths, progress=progress and not json_out, strict=strict)
            points = pipe.store.count()
    if json_out:
        print_json({**report.to_dict(), "points_total": points, "index": str(Path(index).resolve())})
    else:
        print_report(err, report, points)
    if report.errors:
        raise typer.Exit(1)


def _through_server(
    remote: Remote, paths: list[Path], strict: bool, follow_symlinks: bool | None, progress: bool
) -> tuple[IndexReport, int]:
    """Index in the server, with the progress bar here; the report as `Pipeline.index` returns it."""
    from contextlib import ExitStack

    from mmrag.index.progress import progress_bar
    from mmrag.types import FileError, IndexReport

    with ExitStack() as stack:
        bar: Any = None

        def show(event: str, data: Any) -> None:
            nonlocal bar
            if event == "start":
                bar = stack.enter_context(progress_bar(progress, data["total"], "indexing (server)"))
            elif bar is not None:
                bar(1, Path(data["path"]).name[:40])

        absolute = [os.path.abspath(p.expanduser()) for p in paths]
        d = remote.index(absolute, strict, follow_symlinks, show)
    errors = [FileError(**e) for e in d.pop("errors", [])]
    ignored = [FileError(**e) for e in d.pop("ignored", [])]
    points = int(d.pop("points_total", 0))
    return IndexReport(**d, errors=errors, ignored=ignored), points
