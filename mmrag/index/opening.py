"""Opening an index folder for a pipeline: its config from the manifest, and the `IndexFolder` that
holds its manifest, file table, store and lock (`mmrag.index.folder` has the pieces themselves).

`Pipeline.load` reads the config with `config_from_manifest`; a `Pipeline` keeps one `IndexFolder`
and hands its store and file table to the stages.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.index.folder import (
    MANIFEST,
    SCHEMA_VERSION,
    FileTable,
    IndexLock,
    build_manifest,
    check_backend,
    check_encoders,
    read_manifest,
    write_json_atomic,
)
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.config import EncoderConfig, MMRAGConfig
    from mmrag.encoders.embedders import Embedders
    from mmrag.store.base import Store


def config_from_manifest(index_dir: Path, overrides: dict[str, Any]) -> MMRAGConfig:
    """The config an index was built with, read from its manifest, with search-time `overrides`.

    The store's API key comes from the environment, never from the manifest. `overrides` are dotted
    keys (`generate.model`); None values are left out.

    Raises:
        MMRAGError: The folder holds no index.
    """
    from mmrag.config import MMRAGConfig

    manifest = read_manifest(index_dir)
    if manifest is None:
        raise MMRAGError(f"{index_dir}: no index here (no {MANIFEST}); build one with mmrag index")
    cfg = MMRAGConfig.load(profile=manifest.get("profile", "default"), env={})
    recorded = manifest.get("config", {})
    for section in ("encoders", "store", "ingest", "search", "rerank", "generate"):
        for k, v in recorded.get(section, {}).items():
            if hasattr(getattr(cfg, section), k):
                setattr(getattr(cfg, section), k, v)
    cfg.index = str(index_dir)
    env_cfg = MMRAGConfig.load(profile=cfg.profile, index=str(index_dir))
    cfg.store.api_key = env_cfg.store.api_key  # secrets come from the environment, never the manifest
    for key, value in overrides.items():
        if value is not None:
            section, _, name = key.rpartition(".")
            setattr(getattr(cfg, section) if section else cfg, name, value)
    return cfg


def wanted_encoders(enc: EncoderConfig) -> dict[str, Any]:
    """The encoders a config asks for, per space, as `check_encoders` compares them with the manifest's."""
    page = getattr(enc, "page", None)
    return {k: {"id": v} for k, v in (("image", enc.image), ("text", enc.text), ("page", page)) if v}


class IndexFolder:
    """An index folder as a pipeline uses it: manifest, file table, store and lock, each opened when needed.

    Args:
        index_dir: The folder (created when first written to).
        config: What the pipeline asks for (encoders, store location and layout, ingest settings).
        embedders: The encoders; a new index's vector spaces come from them, an existing one's from its
            manifest (so opening an index loads no encoder).
    """

    def __init__(self, index_dir: Path, config: MMRAGConfig, embedders: Embedders) -> None:
        self.index_dir, self.config, self.embedders = index_dir, config, embedders
        self.manifest: dict[str, Any] | None = None
        self._store: Store | None = None
        self._files: FileTable | None = None
        self._lock: IndexLock | None = None

    def check(self) -> None:
        """Read the manifest, if the folder holds an index, and refuse other encoders or another backend.

        Raises:
            IndexMismatchError: The index was built with other encoders, or its points live elsewhere.
        """
        manifest = read_manifest(self.index_dir)
        if manifest is not None:
            check_encoders(
                self.index_dir, manifest.get("encoders", {}), wanted_encoders(self.config.encoders)
            )
            check_backend(self.index_dir, manifest, self.config.store.url)
            self.manifest = manifest

    @property
    def store(self) -> Store:
        """The store (opened on first use; the folder is locked while it holds an embedded store)."""
        if self._store is None:
            from mmrag.store import open_store
            from mmrag.store.base import StoreSchema
            from mmrag.store.server import ServerOptions

            self.index_dir.mkdir(parents=True, exist_ok=True)
            st = self.config.store
            if st.url is None:
                self._lock = IndexLock(self.index_dir)
                self._lock.acquire()
            recorded = (self.manifest or {}).get("store", {})
            if recorded.get("dense"):
                # An existing index: its dims are known without loading the encoders.
                multi = dict(recorded.get("multi") or {})
                dense = dict(recorded["dense"])
                schema = StoreSchema(dense, st.hnsw_m, st.hnsw_ef_construct, st.on_disk, multi)
            else:
                schema = self.embedders.schema(st.hnsw_m, st.hnsw_ef_construct, st.on_disk)
            self._store = open_store(
                self.index_dir,
                schema,
                url=st.url,
                collection=st.collection,
                api_key=st.api_key,
                options=ServerOptions.from_config(st),
            )
        return self._store

    @property
    def files(self) -> FileTable:
        """The file table (opened on first use)."""
        if self._files is None:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._files = FileTable(self.index_dir / "files.sqlite")
        return self._files

    def save(self) -> None:
        """Write the manifest (atomically) and flush the store."""
        old = self.manifest or read_manifest(self.index_dir) or {}
        manifest = build_manifest(self.config, self.embedders.describe(), old)
        if self._store is not None:
            self._store.flush()
        write_json_atomic(self.index_dir / MANIFEST, manifest)
        self.manifest = manifest

    def close(self) -> None:
        """Flush and release the store, the file table and the lock."""
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._files is not None:
            self._files.close()
            self._files = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def describe(self) -> dict[str, Any]:
        """What the index holds: counts per modality, files, encoders, the store and its size on disk."""
        from mmrag.store.base import SearchFilter
        from mmrag.types import MODALITIES

        manifest = read_manifest(self.index_dir) or {}
        counts = {m: self.store.count(SearchFilter(modalities=[m])) for m in MODALITIES}
        store_dir = self.index_dir / "store"
        # Blocks, not apparent sizes: the engine's files are sparse (242 MB apparent for 456 KB used).
        used = (
            sum(f.stat().st_blocks * 512 for f in store_dir.rglob("*") if f.is_file())
            if store_dir.exists()
            else 0
        )
        return {
            "index": str(self.index_dir),
            "profile": self.config.profile,
            "schema_version": manifest.get("schema_version", SCHEMA_VERSION),
            "encoders": manifest.get("encoders", {}),
            "store": {**manifest.get("store", {}), "points": self.store.count(), "disk_bytes": used},
            "points_by_modality": counts,
            "files": len(self.files.all()),
            "updated_at": manifest.get("updated_at"),
        }
