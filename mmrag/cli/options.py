"""Every option of the `mmrag` command line, declared once.

A command module takes its options from here (`index: IndexOpt = Path("./mmrag-index")`) and never
calls `typer.Option` itself, so that a flag reads the same in every command that has it: one
spelling, one type, one help text, one environment variable. Defaults stay with the commands (a
command may default `-k` to 10 and another to 5). `tests/test_cli_options.py` holds the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

DEFAULT_BRIDGE = "~/.cache/mmrag/bridges/efficientnet-smollm2"


def _opt(*names: str, text: str, panel: str | None = None, **kw: Any) -> Any:
    """One `typer.Option`: its flags, its help text, its help panel and any further settings."""
    return typer.Option(*names, help=text, rich_help_panel=panel, **kw)


# --- index and store -------------------------------------------------------------------------------

IndexOpt = Annotated[Path, _opt("--index", "-i", text="Index folder.", envvar="MMRAG_INDEX", panel="Index")]
ProfileOpt = Annotated[
    str | None,
    _opt(
        "--profile",
        "-p",
        text="Model profile: default (hub models) or offline (packaged models).",
        envvar="MMRAG_PROFILE",
        panel="Index",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    _opt("--config", "-c", text="TOML config file.", exists=True, dir_okay=False, panel="Index"),
]
ClipSecondsOpt = Annotated[
    float | None, _opt("--clip-seconds", text="Video clip length in seconds.", panel="Ingest")
]
PageEncoderOpt = Annotated[
    str | None,
    _opt(
        "--page-encoder",
        text="Late-interaction page encoder for the page space (vidore/colqwen2-v1.0-hf, "
        "vidore/colpali-v1.3-hf or a folder): PDF pages as patch multi-vectors, scored by MaxSim.",
        envvar="MMRAG_ENCODERS_PAGE",
        panel="Ingest",
    ),
]
PagePoolOpt = Annotated[
    int | None,
    _opt(
        "--page-pool",
        text="Hierarchical token pooling factor for page multi-vectors (1 keeps every patch vector).",
        envvar="MMRAG_ENCODERS_PAGE_POOL",
        panel="Ingest",
    ),
]
AsrOpt = Annotated[
    str | None,
    _opt(
        "--asr",
        text="Speech to text for videos: auto (when a video has no subtitles), always, or never. "
        "Audio files are always transcribed.",
        envvar="MMRAG_INGEST_ASR",
        panel="Ingest",
    ),
]
AsrModelOpt = Annotated[
    str | None,
    _opt(
        "--asr-model",
        text="faster-whisper model: whisper-tiny.en (packaged), a hub id or a CTranslate2 folder.",
        envvar="MMRAG_INGEST_ASR_MODEL",
        panel="Ingest",
    ),
]
StrictOpt = Annotated[bool, _opt("--strict", text="Stop at the first bad file.")]
ProgressOpt = Annotated[bool, _opt("--progress/--no-progress", text="Progress bar on stderr.")]
JsonOpt = Annotated[bool, _opt("--json", text="Print JSON to stdout.")]
QdrantUrlOpt = Annotated[
    str | None,
    _opt(
        "--qdrant-url",
        text="Qdrant server URL instead of the embedded engine.",
        envvar="MMRAG_QDRANT_URL",
        panel="Store",
    ),
]
ToOpt = Annotated[str, _opt("--to", text="A new folder (portable bundle) or a Qdrant server URL.")]
FromOpt = Annotated[
    Path, _opt("--from", text="A bundle written by mmrag export, or an index folder (e.g. one on a server).")
]
OutOpt = Annotated[
    Path | None,
    _opt(
        "--out",
        text="Folder to write: the bridge (train-projector), or with a server URL the new index folder "
        "that uses the collection (export).",
    ),
]
CollectionOpt = Annotated[
    str | None,
    _opt("--collection", text="Collection on the server (default: the source index's).", panel="Store"),
]
ShardsOpt = Annotated[
    int | None, _opt("--shards", text="Shards of the new collection (cluster).", panel="Store")
]
ReplicasOpt = Annotated[int | None, _opt("--replicas", text="Copies of each shard (cluster).", panel="Store")]
QuantizationOpt = Annotated[
    str, _opt("--quantization", text="'int8': scalar-quantize vectors on the server, rescore.", panel="Store")
]
BatchSizeOpt = Annotated[
    int,
    _opt(
        "--batch-size",
        text="Batch size: training pairs per step (train-projector), points per page (export, import).",
        min=1,
    ),
]

# --- retrieval ----------------------------------------------------------------------------------------

TopKOpt = Annotated[
    int, _opt("-k", "--top-k", text="Hits: returned by search, given to the generator by ask and serve.")
]
ImageOpt = Annotated[
    list[Path] | None,
    _opt(
        "--image",
        text="Query image, searched in the image space (ask: repeatable, shown to the generator too).",
        exists=True,
        dir_okay=False,
    ),
]
ModalityOpt = Annotated[
    list[str] | None,
    _opt(
        "--modality",
        "-m",
        text="Only these modalities: image, page, video, text or audio (repeatable).",
        panel="Filters",
    ),
]
PathGlobOpt = Annotated[str | None, _opt("--path", text="Glob over file paths.", panel="Filters")]
PagesOpt = Annotated[str | None, _opt("--pages", text="Page range, e.g. 3-5.", panel="Filters")]
TimeOpt = Annotated[str | None, _opt("--time", text="Time range in seconds, e.g. 10-60.", panel="Filters")]
RerankOpt = Annotated[
    str | None,
    _opt(
        "--rerank",
        text="Rerank the fused candidates: llm, cross-encoder, vlm, bi-encoder or none.",
        panel="Retrieval",
    ),
]
RerankModelOpt = Annotated[
    str | None,
    _opt(
        "--rerank-model", text="Reranker hub id or folder (default: the reranker's own).", panel="Retrieval"
    ),
]
AdaptiveKOpt = Annotated[
    bool,
    _opt(
        "--adaptive-k",
        text="Keep as many hits as the reranker's scores call for (needs --rerank).",
        panel="Retrieval",
    ),
]
HubnessOpt = Annotated[
    bool | None,
    _opt(
        "--hubness/--no-hubness",
        text="Dual-bank hubness correction of dense scores (banks built at index time).",
        panel="Retrieval",
    ),
]
QueryFiltersOpt = Annotated[
    bool | None,
    _opt(
        "--query-filters/--no-query-filters",
        text="Read source names and dates in the query as filters.",
        panel="Retrieval",
    ),
]
RouteOpt = Annotated[
    str | None,
    _opt(
        "--route",
        text="Question-aware routing to the documents, sources and days the question names: "
        "filter (those first, filled from the rest), boost (fused with the rest) or off.",
        panel="Retrieval",
    ),
]
GroupOpt = Annotated[
    str | None,
    _opt(
        "--group",
        text="Hit units: chunk, page (each page once, ranked by its best chunks) or document-page "
        "(the best documents' pages first).",
        panel="Retrieval",
    ),
]
FollowSymlinksOpt = Annotated[
    bool | None,
    _opt(
        "--follow-symlinks/--no-follow-symlinks",
        text="Follow symbolic links that lead outside the folder being indexed (files and folders); "
        "without it they are left out with a notice.",
        panel="Ingest",
    ),
]
MetaOpt = Annotated[
    Path | None,
    _opt(
        "--meta",
        text="JSONL or CSV mapping file paths to document metadata (title, entity, aliases, type, "
        "year, quarter, date, source); a <file>.meta.json beside a file wins over it.",
        exists=True,
        dir_okay=False,
        panel="Ingest",
    ),
]
ContextualOpt = Annotated[
    bool | None,
    _opt(
        "--contextual/--no-contextual",
        text="Embed each chunk with its document's title, entity, period and section heading.",
        panel="Ingest",
    ),
]
PdfTablesOpt = Annotated[
    bool | None,
    _opt(
        "--pdf-tables/--no-pdf-tables",
        text="Index PDF tables as extra text chunks: each row's label and values with the column "
        "headers (needs pdfplumber: pip install 'mmrag[tables]').",
        panel="Ingest",
    ),
]
MultiHopOpt = Annotated[
    bool,
    _opt("--multi-hop", text="Split the question into sub-queries, retrieve each, answer from the union."),
]
IterativeOpt = Annotated[
    bool, _opt("--iterative", text="Multi-hop by rounds: retrieve, read, ask the next query.")
]
VideoOpt = Annotated[
    str | None,
    _opt(
        "--video",
        text="Ask about a video (path or glob, e.g. episode01.mkv): answer from its retrieved clips.",
        panel="Video",
    ),
]
ChoiceOpt = Annotated[
    list[str] | None,
    _opt(
        "--choice",
        text="A candidate answer (repeatable): each is scored by likelihood and the best wins.",
        panel="Video",
    ),
]

# --- models -------------------------------------------------------------------------------------------

GeneratorOpt = Annotated[
    str | None,
    _opt(
        "--generator",
        "-g",
        text="Generator: a bridge folder (mmrag train-projector), a VLM/LLM hub id or folder, "
        "or a packaged name such as smollm2-135m.",
        envvar="MMRAG_GENERATOR",
        panel="Model",
    ),
]
QuantOpt = Annotated[
    bool | None,
    _opt("--quant/--no-quant", text="Force 4-bit NF4 on or off (default: on for CUDA).", panel="Model"),
]
MaxNewTokensOpt = Annotated[
    int | None, _opt("--max-new-tokens", text="Upper bound on generated tokens.", panel="Model")
]
StopRepeatOpt = Annotated[
    bool | None,
    _opt(
        "--stop-on-repetition/--no-stop-on-repetition",
        text="End an answer at a repeated sentence or 8-word run (default: on).",
        panel="Model",
    ),
]
DeviceOpt = Annotated[str, _opt("--device", text="auto, cpu, cuda, ...", panel="Model")]
PromptsOpt = Annotated[
    Path | None,
    _opt(
        "--prompts", text="Folder of prompt templates overriding the packaged ones.", envvar="MMRAG_PROMPTS"
    ),
]
GeneratorMemoryOpt = Annotated[
    bool, _opt("--generator-memory", text="Load the generator to report its memory footprint.", panel="Model")
]
PreloadOpt = Annotated[
    bool,
    _opt(
        "--preload/--no-preload",
        text="Load the generator and encoders before accepting requests.",
        panel="Model",
    ),
]
RoleOpt = Annotated[
    str | None, _opt("--role", text="Only models with this role: image, text, llm, vlm, page or asr.")
]

LocalOpt = Annotated[
    bool,
    _opt(
        "--local",
        text="Open the index in this process even when an mmrag serve holds it (that server's lock "
        "then refuses it); by default the command goes through the server.",
        envvar="MMRAG_LOCAL",
    ),
]


def retrieval_options(
    rerank: str | None,
    adaptive_k: bool,
    hubness: bool | None,
    query_filters: bool | None,
    route: str | None = None,
    group: str | None = None,
) -> dict[str, Any]:
    """`Pipeline.retrieve` keyword arguments from the shared retrieval options (unset ones left out)."""
    opts: dict[str, Any] = {"rerank": rerank, "hubness": hubness, "filters_from_query": query_filters}
    opts |= {"route": route, "group": group}
    if adaptive_k:
        opts["adaptive_k"] = True
    return {k: v for k, v in opts.items() if v is not None}
