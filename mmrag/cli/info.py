"""`mmrag info`: what an index holds, and the generator that answers from it."""

from __future__ import annotations

from pathlib import Path

from mmrag.cli.common import guarded, open_pipeline, print_json, stdout_console
from mmrag.cli.options import (
    GeneratorMemoryOpt,
    GeneratorOpt,
    IndexOpt,
    JsonOpt,
    LocalOpt,
    QdrantUrlOpt,
    QuantOpt,
)
from mmrag.cli.remote import ServerGone, server_for


@guarded
def info(
    index: IndexOpt = Path("./mmrag-index"),
    qdrant_url: QdrantUrlOpt = None,
    generator: GeneratorOpt = None,
    quant: QuantOpt = None,
    generator_memory: GeneratorMemoryOpt = False,
    json_out: JsonOpt = False,
    local: LocalOpt = False,
) -> None:
    """Show an index's encoders, point counts per modality, files, disk use and the generator.

    With --generator, describe that generator instead of the index's configured one. When an mmrag
    serve holds the index, it answers (--local: read here; its lock then refuses).
    """
    from mmrag.index.folder import read_manifest
    from mmrag.types import MMRAGError

    if read_manifest(index.expanduser().resolve()) is None:
        raise MMRAGError(f"{index}: no index here (no manifest.json); build one with mmrag index")
    overrides = {"generate.model": generator, "generate.quantize": quant}
    data = None
    remote = server_for(index, local) if generator is None and quant is None else None
    if remote is not None:
        try:
            data = remote.info()
        except ServerGone:
            data = None  # a server file that outlived its server: open the index here
    if data is None:
        with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
            data = pipe.info(generator_memory=generator_memory)
            data["documents"] = pipe.router().documents()
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
    if data["documents"]:
        con.print(f"  documents with metadata: {len(data['documents'])}")
        for d in data["documents"][:DOCS_SHOWN]:
            con.print(f"    {Path(d['path']).name}: {d['label']}", highlight=False)
        if len(data["documents"]) > DOCS_SHOWN:
            con.print(f"    ... {len(data['documents']) - DOCS_SHOWN} more (--json lists them all)")
    g = data["generator"]
    mem = f"  memory={g['memory_bytes'] / 1e6:.1f} MB" if g["memory_bytes"] is not None else ""
    con.print(f"  generator  {g['model']}  device={g['device']}  4-bit={g['quantize_4bit']}{mem}")


DOCS_SHOWN = 20
