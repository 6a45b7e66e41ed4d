"""One typed config for the CLI, TOML files, `MMRAG_*` environment variables and the Python API.

Precedence, lowest first: profile defaults < TOML file (`--config`) < environment < explicit values
(CLI flags or keyword arguments).

Example TOML:

    profile = "offline"
    index = "./idx"

    [ingest]
    clip_seconds = 8.0

    [store]
    url = "http://localhost:6333"
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import tomllib

from mmrag.config_sources import apply, from_env, unflatten
from mmrag.types import MMRAGError

PROFILES = ("default", "offline")


@dataclass
class EncoderConfig:
    """Which models embed what."""

    image: str | None = "openai/clip-vit-base-patch32"
    """Image encoder id (registry id, hub id or local folder); None disables the `image` space."""
    text: str | None = "BAAI/bge-small-en-v1.5"
    """Text embedder id; None disables the `text` space."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, `cuda:1`, ..."""
    dtype: str = "auto"
    """`auto` (bf16/fp16 on GPU, fp32 on CPU), `float32`, `float16`, `bfloat16`."""
    batch_size: int = 32
    """Images or texts per forward pass."""
    cpu_bf16: bool = False
    """With `dtype="auto"` on a CPU that has native bfloat16 (AVX512-BF16 or AMX), run the text
    embedder in bfloat16: about 2x faster for MiniLM here (15.5 -> 31 texts/s at one thread), vectors
    within cosine 0.998 of float32. CPUs without it keep float32 (emulated bf16 is slower)."""
    text_runtime: Literal["auto", "torch", "onnx"] = "auto"
    """`auto`: text queries go through ONNX Runtime where the text embedder has an ONNX form (a
    pip-packaged BERT-type encoder with mean pooling: the offline profile's MiniLM; exported once in
    fp32 into `$MMRAG_CACHE/onnx/`), so a search imports neither torch nor transformers; documents go
    through torch (ONNX embedded 37.8 passages/s against bf16 torch's 36.2 on 2 cores, within noise:
    `bench/onnx_parity.py`). `onnx`: documents too. `torch`: never."""
    ocr: bool = False
    """Run OCR (rapidocr) on images, and on PDF pages that have no text layer."""
    tags: int = 3
    """Top class labels added to an image's text when the image tower has a classifier head."""
    page: str | None = None
    """Late-interaction page encoder (`vidore/colqwen2-v1.0-hf`, `vidore/colpali-v1.3-hf`, or a
    folder) for the `page` space: each rendered PDF page is stored as a multi-vector of patch
    vectors and text queries score it by MaxSim. None (the default) leaves the space out."""
    page_pool: int = 1
    """Hierarchical token pooling factor for page multi-vectors (Clavié et al., 2024): 1 keeps every
    patch vector, 3 stores a third of them (see `bench/pages.py` for storage and recall)."""


@dataclass
class StoreConfig:
    """Where points live."""

    url: str | None = None
    """Qdrant server URL (or `:memory:`); None means the embedded engine in the index folder."""
    api_key: str | None = field(default=None, repr=False)
    """Qdrant API key; never written to the manifest or logs."""
    collection: str = "mmrag"
    """Collection name on a server."""
    hnsw_m: int = 16
    """HNSW graph degree."""
    hnsw_ef_construct: int = 100
    """HNSW build-time beam width."""
    on_disk: bool = False
    """Keep vectors on disk (memory-mapped) rather than in RAM."""
    shard_number: int | None = None
    """Server: shards of a new collection (a multiple of the node count, so shards can move)."""
    replication_factor: int | None = None
    """Server: copies of each shard; 2 survives the loss of one node."""
    write_consistency_factor: int | None = None
    """Server: replicas that must acknowledge a write (at most `replication_factor`)."""
    on_disk_payload: bool | None = None
    """Server: keep payloads on disk (memory-mapped) rather than in RAM."""
    quantization: Literal["none", "int8"] = "none"
    """`int8`: scalar-quantize dense vectors (4x less RAM for search), rescoring with the originals."""
    quantization_always_ram: bool = True
    """Keep the int8 copies in RAM even when the original vectors are on disk."""
    oversampling: float = 2.0
    """With int8: candidates fetched per wanted hit before rescoring with the original vectors."""
    hnsw_ef: int | None = None
    """HNSW search beam width (None: the engine's default, which follows the limit)."""
    timeout: int = 30
    """Server: seconds to wait for one request before giving up with an error naming the server."""


@dataclass
class IngestConfig:
    """How files become chunks."""

    clip_seconds: float = 10.0
    """Video clip length."""
    frames_per_clip: int = 4
    """Keyframes sampled per clip; the clip vector is their mean."""
    clip_overlap: float = 0.0
    """Seconds shared by neighbouring video clips (fixed windows); 0 <= clip_overlap < clip_seconds."""
    segment: Literal["fixed", "shots"] = "fixed"
    """`fixed` windows of `clip_seconds` every `clip_seconds - clip_overlap` s, or `shots`: clips end at
    cuts found from colour histograms (every frame decoded); long shots are split into `clip_seconds`."""
    shot_threshold: float = 0.5
    """`shots`: histogram distance (0-1) above which a change is always a cut; above half of it, a cut
    when 3x the recent frame-to-frame distance."""
    min_shot_seconds: float = 1.0
    """`shots`: no cut closer than this to the previous one."""
    video_sampling: Literal["auto", "decode"] = "auto"
    """`auto`: seek to keyframes where that beats decoding on (never decodes more frames);
    `decode`: every frame."""
    subtitle_language: str | None = None
    """Embedded subtitle stream to read when there are several (ISO 639-2, e.g. `eng`); None: the
    default one. A sidecar `.srt`/`.vtt` beside the video wins over embedded streams."""
    video_ocr: bool = False
    """OCR each clip's middle frame (encoders.ocr's engine); ~1.3 s a clip on this CPU."""
    caption: bool = False
    """Caption each clip with `generate.model` while indexing (slow on CPU: ~16 s a clip with the
    bridge); `mmrag caption-clips` adds captions to an existing index later."""
    caption_batch: int = 8
    """Clips per captioner call."""
    page_image_px: int = 448
    """Longest side of a rendered PDF page for the image vector."""
    chunk_words: int = 180
    """Words per text chunk (MiniLM reads ~256 word pieces)."""
    chunk_overlap: int = 30
    """Words shared by neighbouring chunks."""
    pdf_tables: bool = False
    """PDF tables as extra `text` chunks (locator `page=i;table=k`): each row's label and values on one
    line with the column headers, where PDFium's text separates them (needs pdfplumber, `mmrag[tables]`)."""
    meta_file: str | None = None
    """JSONL or CSV rows mapping a `path` (absolute, relative or a file name) to document metadata
    (`title`, `entity`, `aliases`, `type`, `year`, `quarter`, `date`, `source`); a `<file>.meta.json`
    beside a file overrides both this and what is read from the file (`mmrag/ingest/meta.py`)."""
    contextual: bool = False
    """Contextual chunks: the text that is embedded and BM25-indexed starts with the document's
    title, entity, type and period and the page's section heading; the displayed text stays clean."""
    max_image_pixels: int = 64_000_000
    """Refuse images with more pixels (decompression bombs)."""
    max_pdf_pages: int = 2000
    """Refuse PDFs with more pages."""
    follow_symlinks: bool = False
    """Follow symbolic links when walking folders."""
    commit_seconds: float = 2.0
    """Flush the store and record finished files at most this often (and at the end of a run);
    after a crash, a rerun redoes at most this much work. 0 commits after every file."""
    workers: int | None = None
    """Threads that hash, read, decode and preprocess the next files while the encoders run on
    batches that span files (`encoders.batch_size` images a pass). None: one per CPU core up to 4
    (8 when the encoders run on a GPU); 0: no workers, one file at a time, batches within a file."""
    hubness_bank: int = 0
    """Size of the query and gallery banks that hubness correction (`search.hubness`) draws at the
    end of indexing, per dense space; 0 skips them."""
    asr: Literal["auto", "always", "never"] = "auto"
    """Speech to text for videos: `auto` transcribes a video that has no subtitle sidecar or stream,
    `always` every video (the transcript joins the subtitles), `never` none. Audio files are always
    transcribed (speech is all they hold)."""
    asr_model: str = "Systran/faster-whisper-small"
    """faster-whisper model: a registry id (`whisper-tiny.en`, packaged; `whisper-base`, joined from
    pip packages once), a hub id or a folder in CTranslate2 format. Part of the transcript cache key."""
    asr_language: str | None = None
    """Spoken language (`en`, `de`, ...); None detects it (recorded in the payload as `language`)."""
    asr_beam_size: int = 5
    """Beam width of the decoder; 1 is greedy (faster, a little less accurate)."""
    asr_compute_type: str = "auto"
    """CTranslate2 compute type: `auto` (int8 on CPU, float16 on GPU), `int8`, `float16`, `float32`."""
    asr_device: str = "auto"
    """`auto`, `cpu` or `cuda` for speech to text."""


@dataclass
class SearchConfig:
    """How queries run."""

    k: int = 10
    """Hits returned."""
    prefetch: int = 50
    """Candidates per vector before fusion."""
    fusion: Literal["rrf", "dbsf"] = "rrf"
    """How the per-vector candidate lists are fused."""
    rrf_k: int = 2
    """RRF's rank constant: a hit at rank r (0-based) of a list scores 1/(k + r + 1). Qdrant's own
    default is 2 (the RRF paper used 60); a larger k flattens the head of each list."""
    hubness: bool = False
    """Dual-bank normalisation of dense similarities (hubness correction) at query time; needs the
    banks that `mmrag index` computes (`ingest.hubness_bank`)."""
    filters_from_query: bool = False
    """Route by what the question names (same as `route="filter"` when `route` is `off`)."""
    route: Literal["off", "filter", "boost"] = "off"
    """Question-aware routing (`mmrag/retrieve/route.py`): the entities, periods, document types,
    sources and days a question names are matched against the documents' metadata; `filter`
    searches the matching documents first (filled from the rest when they give fewer than k hits),
    `boost` fuses their list with the unrestricted one."""
    dense_weight: float = 1.0
    """Weight of each dense list against BM25's in the fusion (RRF or DBSF). Above 1 the lists are
    fused here instead of in Qdrant (one query per space). FinanceBench dev: BM25 ranks pages of the
    right filing far worse than MiniLM (page Recall@5 0.34 vs 0.52), so 1:1 fusion fell below dense
    alone and 3:1 recovered it."""
    group: Literal["chunk", "page", "document-page"] = "chunk"
    """Units of the hits: `chunk` (as found), `page` (each page once, ranked by its best chunks and
    the page point together) or `document-page` (documents ranked first, then their pages)."""


RerankMethod = Literal["none", "cross-encoder", "llm", "vlm", "bi-encoder"]
"""The reranking methods; `mmrag.rerank.METHODS` is this list."""


@dataclass
class RerankConfig:
    """Second-stage scoring of the fused candidates, and how many of them to keep."""

    method: RerankMethod = "none"
    """`cross-encoder` (a sequence classifier by hub id), `llm` (yes/no logits of a causal LM), `vlm`
    (the same with the hit's image, for image/page/video hits), `bi-encoder` (cosine rescoring with
    the index's own embedders), or `none`."""
    model: str | None = None
    """Hub id or folder; None picks the method's default (`BAAI/bge-reranker-base` for the
    cross-encoder, the packaged `smollm2-135m` for `llm`, `generate.model` for `vlm`)."""
    candidates: int = 30
    """Fused candidates given to the reranker."""
    batch_size: int = 8
    """Query-candidate pairs per forward pass."""
    adaptive_k: bool = False
    """Keep a number of hits chosen from the reranker's scores (threshold, then the largest gap)
    instead of a fixed k; the chosen k is recorded per query."""
    threshold: float = 0.5
    """Adaptive k: hits whose relevance probability is below this are dropped. It depends on the
    method and model: 0.72 was best for the bi-encoder (MiniLM) on MultiHop-RAG dev; SmolLM2-135M's
    yes/no scores are too close to random for any value to mean much."""
    min_k: int = 1
    """Adaptive k never keeps fewer hits than this."""
    max_k: int = 10
    """Adaptive k never keeps more hits than this."""


@dataclass
class GenerateConfig:
    """Which model answers, and how much retrieved context it reads."""

    model: str = "Qwen/Qwen2.5-VL-7B-Instruct"
    """A VLM (hub id/folder), a causal LM, a packaged LLM (`smollm2-135m`) or a bridge folder. The
    `default` profile's Qwen2.5-VL-7B replaced LLaVA-1.5-7B, whose 4,096-token context cannot hold video
    QA's default 8 keyframes (576 tokens each); README, "Choosing the generator", has the reasons."""
    quantize: bool | None = None
    """4-bit NF4 (bitsandbytes) for the LLM; None: on for CUDA, off on CPU."""
    device: str = "auto"
    """`auto`, `cpu`, `cuda`, ..."""
    dtype: str = "auto"
    """`auto`: bfloat16 on CUDA (float16 without bf16) and, for a text LLM, on CPUs with native bf16
    (a bridge keeps float32 there); or `float32`, `float16`, `bfloat16`. 4 bits: the compute dtype."""
    max_new_tokens: int = 192
    """Upper bound on generated tokens (an answer of one to three sentences needs under 100)."""
    stop_on_repetition: bool = True
    """End the answer when it repeats a sentence or a run of `repeat_ngram` words (small models loop)."""
    repeat_ngram: int = 8
    """Words in a run that, written a second time, counts as a loop (0: sentences only)."""
    repetition_penalty: float = 1.0
    """Penalty on tokens the answer already generated (1.0: off); the prompt's tokens are exempt.
    Off by default: loops end by `stop_on_repetition`, and a penalty also hits the digits of numbers
    copied from the sources (with 1.1, SmolLM2 answered the PepsiCo question of issue 17 with "$1.40"
    instead of "14.3%")."""
    label_every_sentence: bool = True
    """`ask`: a sentence that ends without a source label gets one, ` [n]`, picked by the model among
    the existing labels (constrained decoding; refusals get none). Off: labels only where the model
    writes them."""
    answer_first: bool = True
    """`ask`: a question asking whether something is so (`Does ...?`) is answered starting with `Yes` or
    `No`, the model's pick (`mmrag.generate.starts`; chosen on MultiHop-RAG dev). Off: any opening."""
    refuse_unindexed: bool = True
    """`ask`: a question crediting a publication no indexed record is from ("an article by Variety", read
    by `search.filters_from_query`) is refused, naming it, without the model (`mmrag.retrieve.filters`)."""
    context_chars: int = 6000
    """Budget of retrieved text put into the prompt (the top hits first)."""
    max_images: int = 2
    """Retrieved images (photos, page renders, clip keyframes) given to a VLM as visual inputs."""


@dataclass
class RayConfig:
    """Encoding and ingest on a Ray cluster (`mmrag index --ray`, `mmrag[ray]`; docs/scale-out.md)."""

    address: str | None = None
    """None: index in this process. `local`: start a Ray cluster here; `auto`, `host:6379` or
    `ray://host:10001`: join that cluster."""
    encoders: int = 1
    """Encoder actors; each loads the models once."""
    gpus_per_encoder: float = 0.0
    """GPUs each encoder actor declares (0.5: two share a GPU); 0 encodes on CPU."""
    encoder_cpus: float = 0.5
    """CPUs each encoder actor declares; keep actors below the cluster's CPUs (ray#44687)."""
    read_cpus: float = 0.25
    """CPUs each read task (download, hash, decode one file) declares."""
    writers: int | None = None
    """Qdrant server: writer actors (None: one per shard). The embedded store: the driver writes."""
    write_points: int = 128
    """Points per write request at most (Qdrant suggests 64-256)."""
    write_bytes: int = 4 << 20
    """Bytes of vectors (float32) and payload per write request at most."""
    write_retries: int = 5
    """Retries of a write refused with 429, 5xx, a timeout or "Please retry", with backoff."""
    bulk: bool = False
    """New server collection: payload indexes first, HNSW off (m=0) while loading, then built."""


@dataclass
class MMRAGConfig:
    """Everything a pipeline needs; what an index folder records."""

    profile: str = "default"
    """Named defaults: `default` (hub models) or `offline` (packaged models)."""
    index: str = "./mmrag-index"
    """Index folder (manifest, embedded store, file table)."""
    encoders: EncoderConfig = field(default_factory=EncoderConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    ingest: IngestConfig = field(default_factory=IngestConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def to_dict(self, secrets: bool = False) -> dict[str, Any]:
        """Plain dict (TOML/JSON-ready); the API key is dropped unless `secrets`."""
        d = dataclasses.asdict(self)
        if not secrets:
            d["store"].pop("api_key", None)
        return d

    @classmethod
    def from_profile(cls, profile: str = "default") -> MMRAGConfig:
        """Defaults of a named profile."""
        if profile not in PROFILES:
            raise MMRAGError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
        cfg = cls(profile=profile)
        if profile == "offline":
            cfg.encoders.image = "efficientnet-lite0"
            cfg.encoders.text = "sentence-transformers/all-MiniLM-L6-v2"
            cfg.encoders.ocr = True
            cfg.encoders.cpu_bf16 = True
            # chosen on MultiHop-RAG dev against smollm2-135m (kept for fast tests: --generator
            # smollm2-135m); its bytes come from pinned pip slices checked by sha256 (docs/models.md)
            cfg.generate.model = "qwen2.5-coder-0.5b"
            cfg.ingest.asr_model = "whisper-base"  # won on the spoken benchmark's dev seed: 0.80 vs 0.60
        return cfg

    @classmethod
    def load(
        cls,
        profile: str | None = None,
        config_file: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> MMRAGConfig:
        """Build a config from a profile, a TOML file, `MMRAG_*` variables and overrides.

        Overrides use flat names (`index="./idx"`) or dotted ones (`**{"ingest.clip_seconds": 5}`);
        None values are ignored, so CLI options that were not given change nothing.
        """
        env = dict(os.environ) if env is None else env
        file_data: dict[str, Any] = {}
        if config_file is not None:
            path = Path(config_file)
            try:
                file_data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                raise MMRAGError(f"{path}: cannot read config file: {e}") from e
        chosen = profile or env.get("MMRAG_PROFILE") or file_data.get("profile") or "default"
        cfg = cls.from_profile(str(chosen))
        given = unflatten({k: v for k, v in overrides.items() if v is not None})
        for data, source in ((file_data, str(config_file)), (from_env(env, _SECTIONS), "environment")):
            apply(cfg, data, source, _SECTIONS)
        apply(cfg, given, "arguments", _SECTIONS)
        cfg.profile = str(chosen)
        return cfg


_SECTIONS = {
    "encoders": EncoderConfig,
    "store": StoreConfig,
    "ingest": IngestConfig,
    "search": SearchConfig,
    "rerank": RerankConfig,
    "generate": GenerateConfig,
    "ray": RayConfig,
}
