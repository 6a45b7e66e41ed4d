"""`Pipeline`: the front door. Index files, search them, and reopen an index exactly as built.

>>> from mmrag import Pipeline
>>> p = Pipeline.from_config(profile="offline", index="./idx")   # doctest: +SKIP
>>> p.index(["photos/", "reports/"])                              # doctest: +SKIP
>>> hits = p.search("a cat", k=5)                                 # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mmrag.config import MMRAGConfig
from mmrag.encoders.embedders import Embedders
from mmrag.index.opening import IndexFolder, config_from_manifest
from mmrag.ingest.images import open_image
from mmrag.retrieve.query import Query, make_filter
from mmrag.types import Hit, IndexReport, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.answer.ask import Answer
    from mmrag.answer.video.clips import VideoAnswer
    from mmrag.index.folder import FileTable
    from mmrag.index.updates import IndexUpdates
    from mmrag.retrieve.hubness import HubnessBanks
    from mmrag.retrieve.hybrid import Retrieval
    from mmrag.retrieve.multihop import HopResult
    from mmrag.retrieve.route import Router
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
        self.folder = IndexFolder(self.index_dir, config, self.embedders)
        """The index folder: manifest, file table, store and lock (`mmrag.index.opening`)."""
        self._banks: HubnessBanks | Literal[False] | None = None
        self._router: Router | None = None
        self._updates: IndexUpdates | None = None

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
        p.folder.check()
        return p

    @classmethod
    def load(cls, index: str | Path, **overrides: Any) -> Pipeline:
        """Reopen an index with the config recorded in its manifest (search-time overrides allowed)."""
        return cls.from_config(config_from_manifest(Path(index).expanduser().resolve(), overrides))

    # -- resources ----------------------------------------------------------------------------------
    @property
    def store(self) -> Store:
        """The index's store (opened on first use; an embedded store locks the folder)."""
        return self.folder.store

    @property
    def files(self) -> FileTable:
        """The index's file table: which files are indexed, by content hash."""
        return self.folder.files

    def close(self) -> None:
        """Flush and release the store, the file table and the lock."""
        self.folder.close()

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
        import time

        t0 = time.perf_counter()
        found, report = self.updates.discover(paths, strict=strict)
        self.updates.index_files(found, report, progress=progress, strict=strict, on_file=on_file)
        report.seconds = time.perf_counter() - t0
        self.finish_index(changed=bool(report.points_written))
        return report

    @property
    def updates(self) -> IndexUpdates:
        """Indexing in steps (`mmrag.index.updates`), for a server that searches while it indexes."""
        if self._updates is None:
            from mmrag.index.updates import IndexUpdates

            self._updates = IndexUpdates(self.config, self.folder, self.embedders)
        return self._updates

    def finish_index(self, changed: bool = True) -> None:
        """After `updates`: search graphs, the torch-free query encoder, hubness banks, the manifest
        (`IndexUpdates.finish`)."""
        if self.updates.finish(changed):
            self._router = None
        self._banks = None  # banks built just now are read again on the next search

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
        **options: Any,
    ) -> list[Hit]:
        """Search by text and/or image, with filters.

        Args:
            query: Text query (embedded into every space with a text side, and BM25).
            image: Image query (a path or PIL image), searched in the `image` space.
            k: Hits to return (default `config.search.k`; adaptive k may keep fewer).
            modality: `image`, `page`, `video`, `text`, `audio`, or a list of them.
            path: Glob over indexed file paths (`*.pdf`, `reports/*`).
            pages: One-based page range, `3-5`.
            time: Time range in seconds, `10-60`.
            **options: Retrieval options of `retrieve` (`spaces`, `rerank`, `adaptive_k`, `hubness`,
                `filters_from_query`).
        """
        return self.retrieve(
            query, image=image, k=k, modality=modality, path=path, pages=pages, time=time, **options
        ).hits

    def retrieve(
        self,
        query: str | None = None,
        *,
        image: str | Path | Image.Image | None = None,
        k: int | None = None,
        modality: str | list[str] | None = None,
        path: str | None = None,
        pages: str | None = None,
        time: str | None = None,
        spaces: Sequence[str] | None = None,
        rerank: str | None = None,
        adaptive_k: bool | None = None,
        hubness: bool | None = None,
        filters_from_query: bool | None = None,
        route: str | None = None,
        group: str | None = None,
    ) -> Retrieval:
        """`search`, returning a `Retrieval` that also records the chosen k, filters and timings.

        Args:
            spaces: Restrict a text query to these spaces (`text`, `bm25`, `image`).
            rerank: Reranker method (`cross-encoder`, `llm`, `vlm`, `bi-encoder`, `none`); default
                `config.rerank.method`.
            adaptive_k: Keep a number of hits chosen from the reranker's scores.
            hubness: Dual-bank hubness correction of dense scores (needs banks built at index time).
            filters_from_query: Route by what the question names (`route="filter"`).
            route: `off`, `filter` or `boost` (default `config.search.route`): question-aware routing
                to the documents, sources and days the question names.
            group: `chunk`, `page` or `document-page` (default `config.search.group`): hit units.
        """
        from mmrag.rerank import rerank_hits
        from mmrag.retrieve.hybrid import rerank_config, retrieve

        if not query and image is None:
            raise MMRAGError("nothing to search: give a text query or an image")
        img = open_image(image) if image is not None else None
        flt = make_filter(
            modality, path, pages, time, known_paths=(r.path for r in self.files.all()) if path else ()
        )
        rcfg = rerank_config(self.config.rerank, rerank, adaptive_k)
        scfg = self.config.search
        k = k or scfg.k
        use_rerank = rcfg.method != "none" and bool(query)
        hub = scfg.hubness if hubness is None else hubness
        from_query = scfg.filters_from_query if filters_from_query is None else filters_from_query
        mode = route or (scfg.route if scfg.route != "off" or not from_query else "filter")
        units = group or scfg.group
        found = retrieve(
            self.store,
            self.embedders,
            scfg,
            Query(query, img, flt),
            max(k, rcfg.candidates) if use_rerank else k,
            spaces=spaces,
            banks=self.hubness_banks() if hub else None,
            router=self.router() if mode != "off" and query else None,
            route=mode,
            group=units,
        )
        if use_rerank and query and found.hits:
            hits, found.k, found.rerank, seconds = rerank_hits(
                found.hits, query, k, rcfg, self.config.generate, self.embedders
            )
            found.hits = hits
            if found.rerank is not None:
                found.timings["rerank"] = seconds
        else:
            found.hits, found.k = found.hits[:k], min(k, len(found.hits))
        return found

    def hubness_banks(self) -> HubnessBanks | None:
        """The hubness banks built at index time (None when the index has none)."""
        if self._banks is None:
            from mmrag.retrieve.hubness import HubnessBanks

            self._banks = HubnessBanks.load(self.index_dir) or False
        return self._banks or None

    def build_hubness_banks(self) -> None:
        """Draw the query and gallery banks of every dense space the queries can reach (hubness)."""
        from mmrag.retrieve.banks import build_index_banks

        build_index_banks(self.store, self.embedders, self.config.ingest.hubness_bank, self.index_dir)
        self._banks = None

    def router(self) -> Router:
        """Reads the documents, sources and days a question names, with this index's vocabulary (cached)."""
        if self._router is None:
            from mmrag.retrieve.route import Router

            self._router = Router.from_payloads(p["payload"] for p in self.store.scroll())
        return self._router

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
        multi_hop: str | None = None,
        video: str | None = None,
        choices: Sequence[str] | None = None,
        time_range: str | None = None,
        **options: Any,
    ) -> Answer | VideoAnswer:
        """Retrieve, pack the context, and generate an answer that cites its sources.

        Args:
            question: The question.
            images: Query images: searched in the image space and shown to a generator that reads images.
            k: Hits given to the generator.
            modality: Restrict retrieval to these modalities.
            path: Restrict retrieval to files matching this glob.
            on_token: Called with each generated piece of text as it comes (streaming).
            prompt_dir: Folder of prompt templates overriding the packaged ones.
            multi_hop: `decompose` (sub-queries, retrieved and fused) or `iterative` (retrieve, read,
                ask the next query); None retrieves once.
            video: Ask about a video (path or glob): answer from its retrieved clips (`answer_video`).
            choices: Multiple choice about video clips: the likeliest choice wins.
            time_range: With `video`/`choices`: only clips overlapping this range (`"600-900"`).
            **options: Retrieval options of `retrieve` (`rerank`, `adaptive_k`, `hubness`, ...).

        Returns:
            `Answer` with `text`, `sources` (labels, scores, locators), `cited` and `timings`.
        """
        if video is not None or choices:
            from mmrag.answer.video.answer import answer_video
            from mmrag.generate.loader import load_generator

            return answer_video(
                self.search,
                self.store,
                lambda: load_generator(self.config.generate),
                question,
                video,
                choices,
                time_range=time_range,
                k=k,
                on_token=on_token,
                prompt_dir=str(prompt_dir) if prompt_dir else None,
            )
        from mmrag.answer.question import Found, answer_question

        def retrieve(q: str) -> Found:
            if multi_hop:
                return self.multi_hop(q, k, mode=multi_hop, modality=modality, path=path, **options)
            return self.retrieve(q, k=k, modality=modality, path=path, **options)

        def search_image(img: Image.Image) -> list[Hit]:
            return self.search(image=img, k=k, modality=modality, path=path)

        return answer_question(
            question,
            retrieve,
            search_image,
            self.config.generate,
            images or (),
            on_token=on_token,
            prompt_dir=prompt_dir,
        )

    def multi_hop(self, question: str, k: int, mode: str = "decompose", **options: Any) -> HopResult:
        """Multi-hop retrieval (`mmrag.retrieve.multihop.multi_hop`) over this index, with its generator."""
        from mmrag.retrieve.multihop import multi_hop

        return multi_hop(
            self.retrieve,
            question,
            k,
            mode,
            generate_fn=self._generate_fn,
            rrf_k=self.config.search.rrf_k,
            **options,
        )

    def _generate_fn(self, prompt: str, max_new_tokens: int) -> str:
        from mmrag.generate.loader import load_generator

        return str(load_generator(self.config.generate).generate(prompt, max_new_tokens=max_new_tokens))

    def generate(
        self, prompt: str, images: Sequence[str | Path | Image.Image] = (), stream: bool = False
    ) -> str | Iterator[str]:
        """Run the configured generator on a prompt (and images), without retrieval.

        Returns:
            The text, or with `stream=True` an iterator over its pieces as they are generated.
        """
        from mmrag.generate.loader import load_generator

        gen = load_generator(self.config.generate)
        imgs = [open_image(im) for im in images]
        return gen.generate(prompt, imgs, max_new_tokens=self.config.generate.max_new_tokens, stream=stream)

    def info(self, generator_memory: bool = False) -> dict[str, Any]:
        """What the index holds (counts per modality, files, encoders, store) and the configured generator.

        Args:
            generator_memory: Load the generator (if not loaded yet) to report its memory footprint;
                otherwise `generator.memory_bytes` is given only when it is already loaded.
        """
        from mmrag.generate.loader import generator_info

        return self.folder.describe() | {
            "generator": generator_info(self.config.generate, load=generator_memory)
        }

    def save(self) -> None:
        """Write the manifest (atomically) and flush the store."""
        self.folder.save()
