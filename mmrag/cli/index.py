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
from mmrag.cli.options_serve import BulkOpt, EncodersOpt, GpusPerEncoderOpt, RayOpt, WritersOpt
from mmrag.cli.remote import Remote, ServerGone, server_for

if TYPE_CHECKING:
    from mmrag.index.ray_job import StageStats
    from mmrag.types import IndexReport


@guarded
def index(
    paths: Annotated[
        list[str],
        typer.Argument(
            help="Files or folders: images, PDFs, videos, audio, text/JSON corpora; with --ray also "
            "fsspec URLs (s3://bucket/photos, gs://..., file://...)."
        ),
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
    ray: RayOpt = None,
    encoders: EncodersOpt = None,
    gpus_per_encoder: GpusPerEncoderOpt = None,
    writers: WritersOpt = None,
    bulk: BulkOpt = False,
) -> None:
    """Index images, PDFs (page text and page images), videos (clips), audio (speech) and text.

    Unchanged files are skipped; a rerun after a crash resumes without duplicates. Bad files are
    listed at the end (exit code 1) and everything else is indexed. When an mmrag serve holds the
    index, the server indexes the files (file by file, answering searches in between) and this
    command shows its progress and returns once they are searchable (--local: in this process).

    With --ray, reading and encoding run on a Ray cluster (docs/scale-out.md): same points, same
    file table, resumable; on one small machine it is slower than without.
    """
    err = stderr_console()
    ingest = {"ingest.clip_seconds": clip_seconds, "ingest.asr": asr, "ingest.asr_model": asr_model}
    ingest |= {"ingest.meta_file": str(meta.resolve()) if meta else None, "ingest.contextual": contextual}
    ingest |= {"ingest.pdf_tables": pdf_tables, "ingest.follow_symlinks": follow_symlinks}
    ingest |= {"encoders.page": page_encoder, "encoders.page_pool": page_pool}
    scale = {"ray.address": ray, "ray.encoders": encoders, "ray.gpus_per_encoder": gpus_per_encoder}
    scale |= {"ray.writers": writers, "ray.bulk": bulk or None}
    scaled = any(v is not None for v in scale.values())
    report, points, stages = None, 0, None
    remote = server_for(index, local)
    if remote is not None and scaled:
        fail(f"mmrag serve holds {index}; stop it (or pass --local) to index it with --ray")
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
        with open_pipeline(index, profile, config, qdrant_url, **ingest, **scale) as pipe:
            report, stages = _index_here(pipe, paths, progress and not json_out, strict, scaled)
            points = pipe.store.count()
    if json_out:
        extra = {"stages": stages.to_dict()} if stages is not None else {}
        print_json({**report.to_dict(), "points_total": points, "index": str(Path(index).resolve()), **extra})
    else:
        print_report(err, report, points)
    if report.errors:
        raise typer.Exit(1)


def _index_here(
    pipe: Any, paths: list[str], progress: bool, strict: bool, scaled: bool
) -> tuple[IndexReport, StageStats | None]:
    """Index in this process, or on Ray when `ray.address` is set (--ray, MMRAG_RAY_ADDRESS, `[ray]`)."""
    if not pipe.config.ray.address:
        if scaled:
            fail("--encoders, --gpus-per-encoder, --writers and --bulk go with --ray")
        return pipe.index(paths, progress=progress, strict=strict), None
    from mmrag.index.ray_job import ray_index

    report, stages = ray_index(pipe.updates, paths, progress=progress, strict=strict)
    pipe.finish_index(changed=bool(report.points_written))
    return report, stages


def _through_server(
    remote: Remote, paths: list[str], strict: bool, follow_symlinks: bool | None, progress: bool
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

        absolute = [os.path.abspath(os.path.expanduser(p)) for p in paths]
        d = remote.index(absolute, strict, follow_symlinks, show)
    errors = [FileError(**e) for e in d.pop("errors", [])]
    ignored = [FileError(**e) for e in d.pop("ignored", [])]
    points = int(d.pop("points_total", 0))
    return IndexReport(**d, errors=errors, ignored=ignored), points
