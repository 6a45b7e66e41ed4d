"""The one cached eval index: a pipeline over a suite's files, built once under `runs/<suite>/index-<key>`.

The key hashes what decides the index's content:
- the files (names and bytes);
- the encoders and the ingest settings that differ from their defaults (a new setting added at its
  default changes nothing that is indexed, so it leaves cached indexes valid);
- `code_version()`: the source of the code that turns files into points. An index built by older
  code is never silently reused: any edit to ingest, encoders, store or indexer makes a new key.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.pipeline import Pipeline
    from mmrag.types import IndexReport

INDEX_CODE = ("mmrag.types", "mmrag.ingest", "mmrag.encoders", "mmrag.store", "mmrag.index")
"""Modules and packages whose source builds an index (read, chunk, embed, store)."""


def _sources(module: str) -> list[Path]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise MMRAGError(f"cannot find the source of {module}")
    if spec.submodule_search_locations:  # a package: every .py file below it
        return sorted(p for d in spec.submodule_search_locations for p in Path(d).rglob("*.py"))
    return [Path(spec.origin)]


def code_version(modules: Iterable[str] | None = None) -> str:
    """A hash of the index-building code's source files (`INDEX_CODE` by default): names and bytes.

    Read once per process for a given module list: the key describes the code this process runs,
    even if the files change on disk while it runs.
    """
    return _code_version(tuple(INDEX_CODE if modules is None else modules))


@functools.lru_cache(maxsize=8)
def _code_version(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for module in modules:
        for path in _sources(module):
            digest.update(f"{module}:{path.name}\0".encode() + path.read_bytes())
    return digest.hexdigest()[:12]


def index_key(files: Sequence[Path], mcfg: MMRAGConfig, extra: Any = None) -> str:
    """Hash of the files, the encoders, the ingest settings off their defaults, `extra`, and the code."""
    from mmrag.config import IngestConfig

    digest = hashlib.sha256()
    for p in sorted(files):
        digest.update(p.name.encode() + b"\0" + p.read_bytes())
    enc = mcfg.encoders
    defaults = IngestConfig()
    ingest = {
        f.name: v
        for f in fields(IngestConfig)
        if f.name != "hubness_bank" and (v := getattr(mcfg.ingest, f.name)) != getattr(defaults, f.name)
    }
    settings = [enc.image, enc.text, enc.ocr, enc.tags, ingest, extra, code_version()]
    digest.update(json.dumps(settings, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:12]


def open_cached(
    suite: str,
    files: Sequence[Path],
    mcfg: MMRAGConfig,
    runs: str | Path,
    progress: bool = False,
    extra: Any = None,
) -> tuple[Pipeline, IndexReport]:
    """A pipeline over `files` indexed under `runs/<suite>/index-<key>` (built, resumed or reused).

    Raises:
        MMRAGError: a file failed to index (the pipeline is closed first).
    """
    from mmrag.pipeline import Pipeline

    mcfg.index = str(Path(runs) / suite / f"index-{index_key(files, mcfg, extra)}")
    pipe = Pipeline.from_config(mcfg)
    report = pipe.index(list(files), progress=progress)
    if report.errors:
        pipe.close()
        raise MMRAGError(f"cannot index {report.errors[0]}")
    return pipe, report
