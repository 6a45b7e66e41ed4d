"""The record every registered model is described by, and the cache its assembled files go to."""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mmrag.registry.parts import SlicedFile

Family = Literal[
    "clip",
    "siglip",
    "auto-dual",
    "sentence-transformers",
    "efficientnet",
    "causal-lm",
    "vlm",
    "bridge",
    "whisper",
    "colpali",
    "colqwen2",
    "conse",
]
Role = Literal["image", "text", "llm", "vlm", "asr", "page"]


def cache_dir() -> Path:
    """Where assembled and converted models and trained bridges live: `$MMRAG_CACHE` or `~/.cache/mmrag`."""
    return Path(os.environ.get("MMRAG_CACHE") or Path.home() / ".cache" / "mmrag")


@dataclass(frozen=True)
class ModelDescription:
    """What mmrag knows about a model before loading it.

    Attributes:
        id: Hub id or short name; what users type.
        family: Loader family; `mmrag.encoders.<family module>` loads it.
        roles: What it can be used as (`image` and/or `text` encoder, `llm`, `vlm`, `asr`, `page`).
        dim: Output dimension of its embeddings (0 for generators).
        license: SPDX-ish license of the weights.
        dtype: Default dtype on GPU.
        source: `hub` (downloaded by from_pretrained), `package` (shipped whole by a pip package) or
            `parts` (shipped in slices across pinned pip packages, joined once into the cache: `parts`).
        package: For `source="package"` (or a hub model that a package also ships): the
            importable package that holds the weights.
        subpath: Path of the weights inside that package's folder.
        size_mb: Approximate download size.
        extra: The pip extra that installs what it needs.
        description: One line for `mmrag models ls`.
        parts: For `source="parts"`: the slices, their pinned packages, and the size and sha256 the
            joined file must have (`mmrag.registry.parts`).
    """

    id: str
    family: Family
    roles: tuple[Role, ...]
    dim: int
    license: str
    dtype: str = "float16"
    source: Literal["hub", "package", "parts"] = "hub"
    package: str | None = None
    subpath: str = ""
    size_mb: int = 0
    extra: str | None = None
    description: str = ""
    parts: SlicedFile | None = None

    def assembled_dir(self) -> Path | None:
        """For a model shipped in parts: the cache folder its joined file goes to (`<cache>/models/<id>`)."""
        return None if self.parts is None else cache_dir() / "models" / self.id

    def local_path(self) -> Path | None:
        """Folder (or file) of the weights on this machine when they are there, else None.

        A packaged model: its path inside the installed package. A model in parts: its assembled,
        verified cache folder (None until `mmrag.registry.parts.assemble` has run once).
        """
        if self.parts is not None:
            folder = self.assembled_dir()
            return folder if folder is not None and self.parts.verified(folder) else None
        if self.package is None:
            return None
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            return None
        return Path(next(iter(spec.submodule_search_locations))) / self.subpath

    def available(self) -> bool:
        """True when it can load without a model hub (packaged weights installed, or parts installed
        or already assembled)."""
        if self.parts is not None:
            return self.local_path() is not None or not self.parts.missing()
        p = self.local_path()
        return p is not None and p.exists()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["available_offline"] = self.available()
        return d
