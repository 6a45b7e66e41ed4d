"""`mmrag info`: what an index holds."""

from __future__ import annotations

from pathlib import Path

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
def info(
    index: IndexOpt = Path("./mmrag-index"), qdrant_url: QdrantUrlOpt = None, json_out: JsonOpt = False
) -> None:
    """Show an index's encoders, point counts per modality, files and disk use."""
    from mmrag.manifest import read_manifest
    from mmrag.types import MMRAGError

    if read_manifest(index.expanduser().resolve()) is None:
        raise MMRAGError(f"{index}: no index here (no manifest.json); build one with mmrag index")
    with open_pipeline(index, None, None, qdrant_url) as pipe:
        data = pipe.info()
    if json_out:
        print_json(data)
        return
    con = stdout_console()
    con.print(f"[bold]{data['index']}[/]  profile={data['profile']}  schema={data['schema_version']}")
    for space, e in data["encoders"].items():
        con.print(f"  {space:5s} {e['id']}  dim={e['dim']}  text-aligned={e.get('aligned_text')}")
    st = data["store"]
    con.print(f"  store  {st.get('backend')}  points={st['points']}  disk={st['disk_bytes'] / 1e6:.1f} MB")
    con.print(
        "  "
        + "  ".join(f"{m}={n}" for m, n in data["points_by_modality"].items())
        + f"  files={data['files']}"
    )
