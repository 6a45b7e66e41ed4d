"""`mmrag info`: what an index holds, and the generator that answers from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrag.cli.common import guarded, open_pipeline, print_json, stdout_console
from mmrag.cli.options import GeneratorMemoryOpt, GeneratorOpt, IndexOpt, JsonOpt, QdrantUrlOpt, QuantOpt


@guarded
def info(
    index: IndexOpt = Path("./mmrag-index"),
    qdrant_url: QdrantUrlOpt = None,
    generator: GeneratorOpt = None,
    quant: QuantOpt = None,
    generator_memory: GeneratorMemoryOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Show an index's encoders, point counts per modality, files, disk use and the generator.

    With --generator, describe that generator instead of the index's configured one.
    """
    from mmrag.index.folder import read_manifest
    from mmrag.types import MMRAGError

    if read_manifest(index.expanduser().resolve()) is None:
        raise MMRAGError(f"{index}: no index here (no manifest.json); build one with mmrag index")
    overrides = {"generate.model": generator, "generate.quantize": quant}
    with open_pipeline(index, None, None, qdrant_url, **overrides) as pipe:
        data = pipe.info(generator_memory=generator_memory)
        data["documents"] = _documents(pipe)
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


def _documents(pipe: Any) -> list[dict[str, Any]]:
    """The documents' metadata as routing reads it (`mmrag/ingest/meta.py`), one entry per file."""
    from dataclasses import asdict

    from mmrag.retrieve.route import doc_label

    out = []
    for d in pipe.router().docs:
        fields = {k: v for k, v in asdict(d).items() if v not in (None, [])}
        out.append(fields | {"label": doc_label({f"doc_{k}": v for k, v in fields.items()})})
    return out
