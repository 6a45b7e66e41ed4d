"""`mmrag export` and `mmrag import`: move an index between the embedded store, a Qdrant server and a
portable bundle folder, copying the vectors (never re-encoding).

    mmrag export --index ./idx --to ./idx.bundle                      # a folder to carry elsewhere
    mmrag import --from ./idx.bundle --index ./idx2                   # ... and back into an index
    mmrag export --index ./idx --to http://qdrant:6333 --out ./idx-srv --shards 6 --replicas 2
    mmrag import --from ./idx-srv --index ./idx-local                 # server points -> embedded

The server's API key comes from MMRAG_QDRANT_API_KEY (never from an option: options show in `ps`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmrag.cli.common import fail, guarded, print_json, stderr_console
from mmrag.cli.options import (
    BatchSizeOpt,
    CollectionOpt,
    FromOpt,
    IndexOpt,
    JsonOpt,
    OutOpt,
    ProgressOpt,
    QdrantUrlOpt,
    QuantizationOpt,
    ReplicasOpt,
    ShardsOpt,
    ToOpt,
)


def _options(shards: int | None, replicas: int | None, quantization: str) -> Any:
    from mmrag.store.server import ServerOptions

    return ServerOptions(shard_number=shards, replication_factor=replicas, quantization=quantization)  # type: ignore[arg-type]


def _api_key() -> str | None:
    return os.environ.get("MMRAG_QDRANT_API_KEY") or None


def _show(report: Any, json_out: bool, ready: Path | None) -> None:
    if json_out:
        print_json(report.to_dict())
        return
    err = stderr_console()
    from rich.markup import escape

    err.print(
        f"[bold]copied[/] {report.copied} points in {report.seconds:.1f}s ({report.points_per_s:.0f}/s)"
        + (f", resumed after {report.resumed_at}" if report.resumed_at else "")
        + f"; {report.points} in {escape(report.dest)}, {report.verified} sampled points checked",
        highlight=False,
    )
    if ready is not None:
        err.print(f"ready: mmrag search --index {escape(str(ready))} ...", highlight=False)


@guarded
def export_index(
    index: IndexOpt,
    to: ToOpt,
    out: OutOpt = None,
    collection: CollectionOpt = None,
    shards: ShardsOpt = None,
    replicas: ReplicasOpt = None,
    quantization: QuantizationOpt = "none",
    batch_size: BatchSizeOpt = 1024,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Export an index to a portable bundle folder, or copy its points onto a Qdrant server.

    Resumable: run the same command again after an interruption. The copy is checked afterwards
    (point counts, and a sample of vectors and payloads read back).
    """
    from mmrag.index.transfer import copy_index, export_bundle, is_url

    bar = progress and not json_out
    if is_url(to):
        if out is None:
            fail("--out is needed with a server URL: the new index folder that will use the collection")
        report = copy_index(
            index,
            out,
            url=to,
            collection=collection,
            api_key=_api_key(),
            source_api_key=_api_key(),
            options=_options(shards, replicas, quantization),
            batch_size=batch_size,
            progress=bar,
        )
        _show(report, json_out, out)
        return
    if out is not None or collection or shards or replicas or quantization != "none":
        fail("--out, --collection, --shards, --replicas and --quantization apply to a server URL only")
    report = export_bundle(index, Path(to), api_key=_api_key(), batch_size=batch_size, progress=bar)
    _show(report, json_out, None)


@guarded
def import_index(
    source: FromOpt,
    index: IndexOpt,
    qdrant_url: QdrantUrlOpt = None,
    collection: CollectionOpt = None,
    shards: ShardsOpt = None,
    replicas: ReplicasOpt = None,
    quantization: QuantizationOpt = "none",
    batch_size: BatchSizeOpt = 1024,
    progress: ProgressOpt = True,
    json_out: JsonOpt = False,
) -> None:
    """Make a new index folder from a bundle or another index: points in the embedded store, or on
    the Qdrant server given by --qdrant-url.

    Resumable: run the same command again after an interruption.
    """
    from mmrag.index.transfer import BUNDLE, copy_index, import_bundle

    kwargs: dict[str, Any] = {
        "url": qdrant_url,
        "collection": collection,
        "api_key": _api_key(),
        "options": _options(shards, replicas, quantization),
        "batch_size": batch_size,
        "progress": progress and not json_out,
    }
    if (source / BUNDLE).is_file():
        report = import_bundle(source, index, **kwargs)
    elif (source / "manifest.json").is_file():
        report = copy_index(source, index, source_api_key=_api_key(), **kwargs)
    else:
        fail(f"{source}: neither a bundle ({BUNDLE}) nor an index folder (manifest.json)")
    _show(report, json_out, index)
