"""Options of the training and evaluation commands (`train-projector`, `mmrag eval ...`), declared once.

The same rules as `mmrag.cli.options` (one spelling, type, help text and variable per flag); split
from it by command group to keep each module readable.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from mmrag.cli.options import _opt

# --- training -----------------------------------------------------------------------------------------

VisionOpt = Annotated[str, _opt("--vision", text="efficientnet-lite0, or a CLIP/SigLIP id or folder.")]
LlmOpt = Annotated[str, _opt("--llm", text="Causal LM: packaged name (smollm2-135m), hub id or folder.")]
DataOpt = Annotated[
    str | None,
    _opt(
        "--data",
        text="Data: for train-projector easy-vqa, a .jsonl file or a folder of image + .txt pairs; "
        "for an eval, the folder of its files (default: the shared data).",
    ),
]
FeatureOpt = Annotated[str, _opt("--feature", text="pooled or grid tower features.")]
VisualTokensOpt = Annotated[int, _opt("--visual-tokens", text="Visual tokens per image.")]
MaxPairsOpt = Annotated[int, _opt("--max-pairs", text="Training pairs (one pass).")]
MaxImagesOpt = Annotated[int, _opt("--max-images", text="Draw the pairs from this many images (0: all).")]
LrOpt = Annotated[float, _opt("--lr", text="Learning rate.")]
SeedOpt = Annotated[int, _opt("--seed", text="Random seed: question draw, generated video, training order.")]
NoResumeOpt = Annotated[bool, _opt("--no-resume", text="Ignore an existing checkpoint.")]
LoraOpt = Annotated[bool, _opt("--lora", text="Stage 2: also train LoRA adapters on the LLM (needs peft).")]
LoraROpt = Annotated[int, _opt("--lora-r", text="LoRA rank.")]

# --- evaluation suites --------------------------------------------------------------------------------

RunsOpt = Annotated[
    Path, _opt("--runs", text="Where run folders go, and what a suite caches (index, generated video).")
]
BenchOpt = Annotated[
    Path | None,
    _opt(
        "--bench",
        text="Also write the summary JSON here (default: bench/results/<suite>.json on a full run of "
        "the shared data; easy-vqa: none).",
    ),
]
ConfigsOpt = Annotated[
    list[str] | None,
    _opt("--configs", text="Run these retrieval configurations (repeatable; default: the suite's)."),
]
QuestionsOpt = Annotated[
    str | None,
    _opt(
        "--questions",
        text="How many questions to draw (seeded; 0: all); financebench: the questions JSONL file "
        "(default: the shared 62-question sample).",
    ),
]
LimitOpt = Annotated[int, _opt("--limit", text="First N questions only (0: all).")]
AnswersOpt = Annotated[
    bool,
    _opt(
        "--answers/--no-answers",
        text="Also generate answers (slow), from retrieval and from the gold evidence.",
    ),
]
ImageModelOpt = Annotated[
    str | None,
    _opt(
        "--image-model",
        text="Image encoder override: a CLIP/SigLIP id or folder (clip8: one with a text side).",
    ),
]
SplitOpt = Annotated[str, _opt("--split", text="dev (tune) or test (report).")]
QueriesOpt = Annotated[
    Path | None,
    _opt("--queries", text="Queries in the MultiHopRAG.json schema (default: the shared split)."),
]
CorpusOpt = Annotated[
    Path | None,
    _opt("--corpus", text="corpus.json or articles_facts.jsonl (default: the shared evidence)."),
]
SweepOpt = Annotated[
    str | None, _opt("--sweep", text="`retrieval`: every retrieval configuration side by side.")
]
DecomposerOpt = Annotated[str, _opt("--decomposer", text="Sub-queries for +multi-hop: rules or llm.")]
AnswerSampleOpt = Annotated[
    int, _opt("--answer-sample", text="With --answers: the first N/4 queries of each question type (0: all).")
]
ReportOpt = Annotated[bool, _opt("--report/--no-report", text="Also write report.html into the run folder.")]
DocOpt = Annotated[
    list[str] | None, _opt("--doc", text="Index only this document (repeatable), ask its questions.")
]
PdfsOpt = Annotated[Path | None, _opt("--pdfs", text="Folder of <doc_name>.pdf (default: the shared PDFs).")]
TagBaselineOpt = Annotated[
    bool,
    _opt(
        "--tag-baseline/--no-tag-baseline",
        text="Also report the ImageNet-tag text baseline (labelled as such).",
    ),
]
MinutesOpt = Annotated[float, _opt("--minutes", text="Length of the generated video.")]
FramesOpt = Annotated[int, _opt("--frames", text="Frame budget per question, split across the clips.")]
ContextClipsOpt = Annotated[int, _opt("--context-clips", text="Retrieved clips the generator reads.")]
FusionOpt = Annotated[str, _opt("--fusion", text="auto, joint (one prompt) or late (per clip and source).")]
TextScoringOpt = Annotated[
    str,
    _opt("--text-scoring", text="Late fusion: pmi (clip text as plain continuation) or chat (as the reply)."),
]
TvqaOpt = Annotated[
    Path | None,
    _opt("--tvqa", text="TVQA-long tvqa_val_edited.json: run TVQA-long instead.", exists=True),
]
TvqaSubtitlesOpt = Annotated[
    Path | None, _opt("--tvqa-subtitles", text="TVQA tvqa_preprocessed_subtitles.json.", exists=True)
]
TvqaFramesOpt = Annotated[Path | None, _opt("--tvqa-frames", text="TVQA frames root (frames_hq/).")]
EpisodesOpt = Annotated[int, _opt("--episodes", text="TVQA-long: first N episodes (0: all).")]
