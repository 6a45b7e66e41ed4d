"""`Pipeline`: the front door. Index files, search them, and reopen an index exactly as built.

>>> from mmrag import Pipeline
>>> p = Pipeline.from_config(profile="offline", index="./idx")   # doctest: +SKIP
>>> p.index(["photos/", "reports/"])                              # doctest: +SKIP
>>> hits = p.search("a cat", k=5)                                 # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.config import MMRAGConfig
from mmrag.embed import Embedders
from mmrag.manifest import (
    SCHEMA_VERSION,
    FileTable,
    IndexLock,
    check_encoders,
    read_manifest,
    write_json_atomic,
)
from mmrag.search import Query, build_prefetches, make_filter, to_hits
from mmrag.types import Hit, IndexReport, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.answer import Answer
    from mmrag.store.base import Store


class Pipeline:
    """Index images, PDFs, videos and text into Qdrant and search them.

    Build with `Pipeline.from_config(...)` (new or existing index) or `Pipeline.load(dir)` (existing
    index, with the encoders recorded in its manifest). Use as a context manager, or call `close()`:
    the embedded store is locked to one process while open.
    """

    def __init__(self, config: MMRAGConfig) -> None:
        self.config = config
        self.index_dir = Path(config.index).expanduser().resolve()
        self.embedders = Embedders(config.encoders)
        self._store: Store | None = None
        self._files: FileTable | None = None
        self._lock: IndexLock | None = None
        self._manifest: dict[str, Any] | None = None

    # -- construction -------------------------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: MMRAGConfig | None = None,
        *,
        profile: str | None = None,
        index: str | Path | None = None,
        config_file: str | Path | None = None,
        **overrides: Any,
    ) -> Pipeline:
        """A pipeline from a config object, or from a profile + TOML file + `MMRAG_*` env + overrides.

        Args:
            config: A ready config; the other arguments are then ignored.
            profile: `default` (hub models) or `offline` (packaged models).
            index: Index folder.
            config_file: TOML file with the same sections as `MMRAGConfig`.
            **overrides: Dotted config keys, e.g. `**{"ingest.clip_seconds": 5}`.

        Raises:
            IndexMismatchError: the index folder was built with other encoders.
        """
        if config is None:
            config = MMRAGConfig.load(
                profile=profile, config_file=config_file, index=str(index) if index else None, **overrides
            )
        p = cls(config)
        manifest = read_manifest(p.index_dir)
        if manifest is not None:
            check_encoders(p.index_dir, manifest.get("encoders", {}), p._wanted_encoders())
            p._manifest = manifest
        return p

    @classmethod
    def load(cls, index: str | Path, **overrides: Any) -> Pipeline:
        """Reopen an index with the config recorded in its manifest (search-time overrides allowed)."""
        index_dir = Path(index).expanduser().resolve()
        manifest = read_manifest(index_dir)
        if manifest is None:
            raise MMRAGError(f"{index_dir}: no index here (no manifest.json); build one with mmrag index")
        cfg = MMRAGConfig.load(profile=manifest.get("profile", "default"), env={})
        recorded = manifest.get("config", {})
        for section in ("encoders", "store", "ingest", "search", "generate"):
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
        return cls.from_config(cfg)

    def _wanted_encoders(self) -> dict[str, Any]:
        enc = self.config.encoders
        return {k: {"id": v} for k, v in (("image", enc.image), ("text", enc.text)) if v}

    # -- resources ----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        if self._store is None:
            from mmrag.store import open_store
            from mmrag.store.base import StoreSchema

            self.index_dir.mkdir(parents=True, exist_ok=True)
            if self.config.store.url is None:
                self._lock = IndexLock(self.index_dir)
                self._lock.acquire()
            st = self.config.store
            recorded = (self._manifest or {}).get("store", {}).get("dense")
            if recorded:
                # An existing index: its dims are known without loading the encoders.
                schema = StoreSchema(dict(recorded), st.hnsw_m, st.hnsw_ef_construct, st.on_disk)
            else:
                schema = self.embedders.schema(st.hnsw_m, st.hnsw_ef_construct, st.on_disk)
            self._store = open_store(
                self.index_dir,
                schema,
                url=self.config.store.url,
                collection=self.config.store.collection,
                api_key=self.config.store.api_key,
            )
        return self._store

    @property
    def files(self) -> FileTable:
        if self._files is None:
            self.index_dir.mkdir(parents=True, exist_ok=True)
            self._files = FileTable(self.index_dir / "files.sqlite")
        return self._files

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

    def __enter__(self) -> Pipeline:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- work ---------------------------------------------------------------------------------------
    def index(
        self,
        paths: Sequence[str | Path],
        *,
        progress: bool = False,
        strict: bool = False,
        on_file: Callable[[Path, int], None] | None = None,
    ) -> IndexReport:
        """Index files and folders; unchanged files are skipped, bad ones reported in the report.

        Args:
            paths: Files or folders (walked recursively).
            progress: Show a progress bar on stderr.
            strict: Stop at the first bad file instead of reporting it and going on.
        """
        from mmrag.indexer import Indexer

        ocr = None
        if self.config.encoders.ocr:
            from mmrag.encoders.ocr import Ocr

            ocr = Ocr()
        store = self.store
        self.save()  # the manifest exists before the first point: an interrupted index is still openable
        report = Indexer(self.config, store, self.files, self.embedders, ocr=ocr).run(
            paths, progress=progress, strict=strict, on_file=on_file
        )
        if report.points_written:
            # The embedded engine builds HNSW only when asked; until then every search is brute force.
            store.optimize()
        self.save()
        return report

    def search(
        self,
        query: str | None = None,
        *,
        image: str | Path | Image.Image | None = None,
        k: int | None = None,
        modality: str | list[str] | None = None,
        path: str | None = None,
        pages: str | None = None,
        time: str | None = None,
    ) -> list[Hit]:
        """Search by text and/or image, with filters.

        Args:
            query: Text query (embedded into every space with a text side, and BM25).
            image: Image query (a path or PIL image), searched in the `image` space.
            k: Hits to return (default `config.search.k`).
            modality: `image`, `page`, `video`, `text`, or a list of them.
            path: Glob over indexed file paths (`*.pdf`, `reports/*`).
            pages: One-based page range, `3-5`.
            time: Time range in seconds, `10-60`.
        """
        if not query and image is None:
            raise MMRAGError("nothing to search: give a text query or an image")
        img = _open_query_image(image) if image is not None else None
        flt = make_filter(
            modality, path, pages, time, known_paths=(r.path for r in self.files.all()) if path else ()
        )
        cfg = self.config.search
        prefetches = build_prefetches(
            Query(query, img, flt), self.embedders, cfg.prefetch, self.store.schema.dense
        )
        if not prefetches:
            return []
        points = self.store.query(prefetches, limit=k or cfg.k, flt=flt, fusion=cfg.fusion)
        return to_hits(points)

    def ask(
        self,
        question: str,
        *,
        images: Sequence[str | Path | Image.Image] | None = None,
        k: int = 5,
        modality: str | list[str] | None = None,
        path: str | None = None,
        on_token: Callable[[str], None] | None = None,
        prompt_dir: str | Path | None = None,
    ) -> Answer:
        """Retrieve, pack the context, and generate an answer that cites its sources.

        Args:
            question: The question.
            images: Query images: searched in the image space and shown to a generator that reads images.
            k: Hits given to the generator.
            modality: Restrict retrieval to these modalities.
            path: Restrict retrieval to files matching this glob.
            on_token: Called with each generated piece of text as it comes (streaming).
            prompt_dir: Folder of prompt templates overriding the packaged ones.

        Returns:
            `Answer` with `text`, `sources` (labels, scores, locators), `cited` and `timings`.
        """
        from mmrag.answer import answer

        query_images = [_open_query_image(im) for im in images or []]
        t0 = time.perf_counter()
        # With query images, what looks like them comes first (a question about a picture is mostly
        # generic text: "what is this?"), then what the question's text finds.
        hits: list[Hit] = []
        for img in query_images:
            hits += self.search(image=img, k=k, modality=modality, path=path)
        hits += self.search(question, k=k, modality=modality, path=path)
        hits = _first_occurrences(hits)
        t_retrieve = time.perf_counter() - t0
        return answer(
            question,
            hits,
            self.config.generate,
            query_images,
            on_token=on_token,
            prompt_dir=prompt_dir,
            t_retrieve=t_retrieve,
        )

    def generate(
        self, prompt: str, images: Sequence[str | Path | Image.Image] = (), stream: bool = False
    ) -> str | Iterator[str]:
        """Run the configured generator on a prompt (and images), without retrieval.

        Returns:
            The text, or with `stream=True` an iterator over its pieces as they are generated.
        """
        from mmrag.answer import load_generator

        gen = load_generator(self.config.generate)
        imgs = [_open_query_image(im) for im in images]
        return gen.generate(prompt, imgs, max_new_tokens=self.config.generate.max_new_tokens, stream=stream)

    def info(self, generator_memory: bool = False) -> dict[str, Any]:
        """What the index holds (counts per modality, files, encoders, store) and the configured generator.

        Args:
            generator_memory: Load the generator (if not loaded yet) to report its memory footprint;
                otherwise `generator.memory_bytes` is given only when it is already loaded.
        """
        from mmrag.answer import generator_info
        from mmrag.store.base import SearchFilter

        manifest = read_manifest(self.index_dir) or {}
        counts = {
            m: self.store.count(SearchFilter(modalities=[m])) for m in ("image", "page", "video", "text")
        }
        files = self.files.all()
        store_dir = self.index_dir / "store"
        disk = sum(f.stat().st_size for f in store_dir.rglob("*") if f.is_file()) if store_dir.exists() else 0
        return {
            "index": str(self.index_dir),
            "profile": self.config.profile,
            "schema_version": manifest.get("schema_version", SCHEMA_VERSION),
            "encoders": manifest.get("encoders", {}),
            "store": {**manifest.get("store", {}), "points": self.store.count(), "disk_bytes": disk},
            "points_by_modality": counts,
            "files": len(files),
            "updated_at": manifest.get("updated_at"),
            "generator": generator_info(self.config.generate, load=generator_memory),
        }

    def save(self) -> None:
        """Write the manifest (atomically) and flush the store."""
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        old = self._manifest or read_manifest(self.index_dir) or {}
        enc = self.embedders.describe()
        for d in enc.values():
            d["revision"] = _revision(d["id"])
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "mmrag_version": _version(),
            "profile": self.config.profile,
            "encoders": enc,
            "bm25": {"encoder": "qdrant_edge.Bm25", "language": "english", "modifier": "idf"},
            "store": {
                "backend": "edge" if self.config.store.url is None else "qdrant-server",
                "collection": self.config.store.collection,
                "dense": {s: d["dim"] for s, d in enc.items()},
                "sparse": ["bm25"],
            },
            "config": self.config.to_dict(secrets=False),
            "created_at": old.get("created_at", now),
            "updated_at": now,
        }
        if self._store is not None:
            self._store.flush()
        write_json_atomic(self.index_dir / "manifest.json", manifest)
        self._manifest = manifest


def _first_occurrences(hits: list[Hit]) -> list[Hit]:
    """Drop repeated points, keeping each one where it first appears."""
    seen: set[str] = set()
    out = []
    for h in hits:
        if h.id not in seen:
            seen.add(h.id)
            out.append(h)
    return out


def _open_query_image(image: str | Path | Image.Image) -> Image.Image:
    if not isinstance(image, str | Path):
        return image
    from mmrag.ingest.images import load_image

    return load_image(Path(image))


def _revision(model_id: str) -> str | None:
    """Package version for packaged weights; None for hub models (their commit is not known offline)."""
    from importlib.metadata import PackageNotFoundError, version

    from mmrag.registry import get_model

    desc = get_model(model_id)
    if desc is None or desc.package is None:
        return None
    try:
        return f"{desc.package.replace('_', '-')}=={version(desc.package.replace('_', '-'))}"
    except PackageNotFoundError:
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmrag")
    except PackageNotFoundError:
        return "0+unknown"
