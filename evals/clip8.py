"""clip8: text-to-image retrieval on the eight captions of the classic CLIP demo (scikit-image photos).

Each caption of the `clip8` subset of `captions.json` is searched in the `image` space of an index
holding the subset's images; top-1 accuracy (the caption's own image ranks first) and MRR are
reported. This needs an image encoder with a text side (CLIP, SigLIP: registry role `text`): the
offline profile's EfficientNet-Lite0 is an ImageNet tower whose space no text reaches, so the
suite stops with that reason rather than print a number.

`tag_baseline=True` adds, clearly labelled, what the offline profile can do instead: the image
points carry their top ImageNet labels as text ("tags: tabby, Egyptian Mau, ..."), and the caption
is searched against those tags in the text space (MiniLM) and with BM25. That measures the
classifier's labels, not a text-aligned image space. OCR is off here, so no image's printed text
helps it.

Output: `runs/clip8/<timestamp>/` (`config.json`, `samples.jsonl`, `metrics.json`, `metrics.md`,
`sweep.png`) and `bench_file` when given.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.encoders import aligned_image_space
from mmrag.evals import write_json, write_run
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig
    from mmrag.pipeline import Pipeline
    from mmrag.types import IndexReport

SUBSET = "clip8"
METRICS = ("top1", "mrr")
# name -> `Pipeline.search` options; the gallery holds only images, the filter keeps it that way.
CONFIGS: dict[str, dict[str, Any]] = {"text-to-image": {"spaces": ["image"], "modality": "image"}}
BASELINES: dict[str, dict[str, Any]] = {
    "tags-dense (baseline)": {"spaces": ["text"], "modality": "image"},
    "tags-bm25 (baseline)": {"spaces": ["bm25"], "modality": "image"},
}
BASELINE_NOTE = "baseline: the caption against the images' ImageNet tags as text, not text-to-image"


def shared_skimage() -> Path:
    """`$MMRAG_SHARED_DATA/images/skimage`, by default ../shared/data beside the checkout."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("MMRAG_SHARED_DATA", default)) / "images" / "skimage"


def load_captions(folder: str | Path, subset: str = SUBSET) -> list[dict[str, str]]:
    """`[{"image", "caption"}]` of one subset of `<folder>/captions.json`; MMRAGError naming the file."""
    path = Path(folder) / "captions.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{path}: cannot read captions: {e}") from e
    if not isinstance(data, list):
        raise MMRAGError(f"{path}: expected a JSON list of {{image, caption, subset}}")
    out = []
    for i, d in enumerate(data):
        if (
            not isinstance(d, dict)
            or not isinstance(d.get("image"), str)
            or not isinstance(d.get("caption"), str)
        ):
            raise MMRAGError(f"{path}: entry {i} lacks `image` or `caption`")
        if d.get("subset") == subset:
            if not (path.parent / d["image"]).is_file():
                raise MMRAGError(f"{path}: entry {i}: image {d['image']} not found beside it")
            out.append({"image": d["image"], "caption": d["caption"]})
    if len(out) < 2:
        raise MMRAGError(f"{path}: subset {subset!r} has {len(out)} captioned images; top-1 needs at least 2")
    return out


@dataclass
class EvalConfig:
    """One clip8 run."""

    data: str | None = None
    """Folder with `captions.json` and the images; default the shared `images/skimage`."""
    subset: str = SUBSET
    profile: str = "offline"
    image_model: str | None = None
    """Override `encoders.image`: a CLIP/SigLIP hub id or folder."""
    tag_baseline: bool = False
    """Also (or, for a tower without a text side, only) report the ImageNet-tag text baseline."""
    runs: str = "runs"


def model_config(cfg: EvalConfig) -> MMRAGConfig:
    """The pipeline config: the profile, the image override, no OCR, a text space only for the baseline.

    Raises:
        MMRAGError: The image encoder has no text side and the tag baseline was not asked for.
    """
    from mmrag.config import MMRAGConfig

    mcfg = MMRAGConfig.load(profile=cfg.profile, env={})
    if cfg.image_model:
        mcfg.encoders.image = cfg.image_model
    image = mcfg.encoders.image
    if image is None:
        raise MMRAGError("clip8 needs an image encoder (encoders.image is None)")
    if not aligned_image_space(image) and not cfg.tag_baseline:
        raise MMRAGError(
            f"clip8 measures text-to-image retrieval, which needs an image encoder with a text side "
            f"(CLIP, SigLIP); {image} (profile {cfg.profile}) is an image-only tower: no caption can be "
            "embedded in its space, so there is no accuracy to report. Pass --image-model with a "
            "CLIP/SigLIP id or folder, or --tag-baseline for the ImageNet-tag text baseline."
        )
    mcfg.encoders.ocr = False  # printed text in a photo would help the baseline, not the image space
    if not cfg.tag_baseline:
        mcfg.encoders.text = None  # the image space alone is measured: no text tower to load
    return mcfg


def open_index(images: Sequence[Path], mcfg: MMRAGConfig, runs: str) -> tuple[Pipeline, IndexReport]:
    """A pipeline over `images` (and the indexing report), cached in `runs/clip8/index-<key>`."""
    from mmrag.evals._index import open_cached

    return open_cached("clip8", images, mcfg, runs)


def _has_tags(pipe: Pipeline) -> bool:
    from mmrag.store.base import SearchFilter

    return any(p["payload"].get("tags") for p in pipe.store.scroll(SearchFilter(modalities=["image"])))


def _rows(
    pipe: Pipeline, captions: list[dict[str, str]], configs: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for c in captions:
        row: dict[str, Any] = {"caption": c["caption"], "image": c["image"]}
        for name, options in configs.items():
            hits = pipe.search(c["caption"], k=len(captions), **options)
            ranking = [Path(h.path).name for h in hits]
            rank = ranking.index(c["image"]) + 1 if c["image"] in ranking else None
            row[name] = {"ranking": ranking, "rank": rank, "top1": rank == 1}
        rows.append(row)
    return rows


def _scores(rows: list[dict[str, Any]], name: str) -> dict[str, float]:
    ranks = [r[name]["rank"] for r in rows]
    return {
        "top1": round(sum(rank == 1 for rank in ranks) / len(ranks), 4),
        "mrr": round(sum(1 / rank for rank in ranks if rank) / len(ranks), 4),
        "n": len(ranks),
    }


def markdown(metrics: dict[str, Any]) -> str:
    """One row per configuration (baselines labelled), with chance for reference."""
    lines = [
        f"**clip8** ({metrics['images']} images, image encoder `{metrics['models']['image']}`)",
        "",
        "| configuration | top-1 | MRR | n |",
        "|---|---|---|---|",
    ]
    for name, m in metrics["configs"].items():
        lines.append(f"| {name} | {m['top1']:.3f} | {m['mrr']:.3f} | {m['n']} |")
    lines.append(f"| chance | {metrics['chance']:.3f} | | |")
    lines += [f"\n`{name}` not run: {why}." for name, why in metrics["skipped"].items()]
    if any(name in BASELINES for name in metrics["configs"]):
        lines.append(f"\n{BASELINE_NOTE}.")
    return "\n".join(lines) + "\n"


def _print(metrics: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"clip8 · {metrics['images']} images · {metrics['models']['image']}")
    for col in ("configuration", "top-1", "MRR"):
        table.add_column(col, justify="left" if col == "configuration" else "right")
    for name, m in metrics["configs"].items():
        table.add_row(name, f"{m['top1']:.3f}", f"{m['mrr']:.3f}")
    table.add_row("chance", f"{metrics['chance']:.3f}", "")
    console = Console(stderr=True)
    console.print(table)
    for name, why in metrics["skipped"].items():
        console.print(f"{name}: not run: {why}")


def _plot(run: Path, metrics: dict[str, Any]) -> str | None:
    from mmrag.evals.plots import bar_chart

    try:
        chance = {"chance": metrics["chance"]}
        title = f"clip8 · {metrics['models']['image']}"
        out = bar_chart(run / "sweep.png", metrics["configs"], METRICS, title, baseline=chance)
    except MMRAGError as e:  # matplotlib missing: the numbers are written, only the picture is not
        print(f"no plot: {e}", file=sys.stderr)
        return None
    return str(out)


def evaluate(
    cfg: EvalConfig, bench_file: str | Path | None = None, show_table: bool = True
) -> dict[str, Any]:
    """Index the subset's images (cached), search each caption, score; write the run folder.

    Raises:
        MMRAGError: Data missing or malformed, or an image encoder without a text side (unless the
            tag baseline was asked for: then only the baseline runs, labelled as such).
    """
    folder = Path(cfg.data) if cfg.data else shared_skimage()
    if not (folder / "captions.json").is_file():
        raise MMRAGError(
            f"clip8 data not found: no captions.json in {folder} (pass --data or set MMRAG_SHARED_DATA)"
        )
    captions = load_captions(folder, cfg.subset)
    mcfg = model_config(cfg)
    aligned = aligned_image_space(mcfg.encoders.image)
    t0 = time.perf_counter()
    pipe, report = open_index([folder / c["image"] for c in captions], mcfg, cfg.runs)
    with pipe:
        index_seconds = time.perf_counter() - t0
        skipped: dict[str, str] = {}
        configs = dict(CONFIGS) if aligned else {}
        if not aligned:
            skipped["text-to-image"] = f"{mcfg.encoders.image} has no text side (not text-aligned)"
        if cfg.tag_baseline and _has_tags(pipe):
            configs |= BASELINES
        elif cfg.tag_baseline:
            skipped |= {n: f"{mcfg.encoders.image} gives no ImageNet tags to search" for n in BASELINES}
        if not configs:
            raise MMRAGError("clip8: nothing can run: " + "; ".join(skipped.values()))
        t1 = time.perf_counter()
        rows = _rows(pipe, captions, configs)
        search_seconds = time.perf_counter() - t1
        points = pipe.store.count()
    metrics: dict[str, Any] = {
        "suite": "clip8",
        "data": str(folder),
        "subset": cfg.subset,
        "images": len(captions),
        "configs": {name: _scores(rows, name) for name in configs},
        "skipped": skipped,
        "options": configs,
        "chance": round(1 / len(captions), 4),
        "models": {"image": mcfg.encoders.image, "text": mcfg.encoders.text, "aligned_text": aligned},
        "points": points,
        "index_seconds": round(index_seconds, 1),
        "index_reused": report.files_indexed == 0,
        "search_seconds": round(search_seconds, 2),
        "protocol": "each caption searched over the subset's images; top-1: its own image ranks first",
    }
    if any(name in BASELINES for name in configs):
        metrics["note"] = BASELINE_NOTE
    run = write_run(cfg.runs, "clip8", rows, metrics, markdown(metrics), asdict(cfg))
    metrics["run"] = str(run)
    metrics["plot"] = _plot(run, metrics)
    if bench_file is not None:
        write_json(bench_file, metrics)
    if show_table:
        _print(metrics)
    return metrics
