"""Indexing throughput: images/s and PDF pages/s end to end against the image encoder's forward pass.

For each architecture and corpus, measured in one run on the same files and batch size:

- `forward`: the image encoder alone (`encode_pixels`) on already-preprocessed batches of
  `--batch-size` frames, decoding and preprocessing done beforehand and not timed;
- `encoders` (offline profile only, which has a text embedder): all the model work of indexing
  (`encode_chunks`: image pass, tags, MiniLM, BM25) on the same prepared batches;
- `overlapped`: `Pipeline.index` end to end (hash, decode, preprocess, encode, upsert, record) with
  `ingest.workers` reader threads and batches that span files;
- `serial`: the same with `ingest.workers = 0` (one file at a time, the path before workers).

Times are `IndexReport.seconds` (the HNSW build that `Pipeline.index` runs afterwards is not
included). Architectures: `tiny` (a 2-layer, 30-px CLIP from a transformers config), `real-size`
(CLIP ViT-B/32 sizes, random init: the speed of the real model without a download) and `offline`
(the packaged EfficientNet-Lite0 + MiniLM profile). CLIP rows index with no text embedder (BM25
only), so the image encoder is the only model. Images are the scikit-image photos re-saved as
JPEG at random sizes (longest side 480-1280 px) until `--images` distinct files; PDF pages are the
first `--pages-per-pdf` pages of `--pdfs` FinanceBench filings, rendered and read by the indexer.
The first batch is read before anything can be encoded (the pipeline fills): on a corpus of only a
few batches that start-up shows in the ratios.

    python bench/indexing.py                          # ~5 min on 2 CPU cores; bench/results/indexing.*
    python bench/indexing.py --archs real-size --images 64
    python bench/indexing.py --device cuda --batch-size 128
    python bench/indexing.py --repeats 3                # best of 3 on a shared machine
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_result  # noqa: E402

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ARCHS = ("tiny", "real-size", "offline")


# --- corpora and models ----------------------------------------------------------------------------


def make_images(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """`n` distinct JPEGs from the scikit-image photos, each at a random size (longest side 480-1280)."""
    import random

    from PIL import Image

    rng = random.Random(seed)
    sources = sorted(p for p in (DATA / "images" / "skimage").iterdir() if p.suffix in (".png", ".jpg"))
    photos = [Image.open(p).convert("RGB") for p in sources]
    folder.mkdir(parents=True)
    out = []
    for i in range(n):
        im = photos[i % len(photos)]
        side = rng.randint(480, 1280)
        scale = side / max(im.size)
        resized = im.resize((max(1, round(im.width * scale)), max(1, round(im.height * scale))))
        out.append(folder / f"photo{i:04d}.jpg")
        resized.save(out[-1], quality=rng.randint(80, 95))
    return out


def make_pdfs(folder: Path, n: int, pages: int) -> int:
    """The first `pages` pages of `n` FinanceBench PDFs; the number of pages written."""
    import pypdfium2 as pdfium

    folder.mkdir(parents=True)
    total = 0
    for src in sorted((DATA / "docs" / "financebench" / "pdfs").glob("*.pdf"))[:n]:
        doc, new = pdfium.PdfDocument(str(src)), pdfium.PdfDocument.new()
        k = min(pages, len(doc))
        new.import_pages(doc, list(range(k)))
        new.save(str(folder / src.name))
        new.close()
        doc.close()
        total += k
    return total


def build_clip(folder: Path, arch: str) -> Path:
    """A random CLIPModel saved as a hub-style folder: `tiny` or `real-size` (ViT-B/32 sizes)."""
    import torch
    import transformers
    from tiny_models import _TINY, _text_ids, clip_tokenizer
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor

    tok = clip_tokenizer(max_length=77)
    text = {**_text_ids(tok), "max_position_embeddings": 77}
    if arch == "tiny":
        size = 30
        cfg = CLIPConfig(
            text_config={**_TINY, **text},
            vision_config={**_TINY, "image_size": size, "patch_size": 10},
            projection_dim=24,
        )
    else:  # CLIPConfig's defaults are ViT-B/32: 12 layers of 768, 32-px patches, 224-px images
        size = 224
        cfg = CLIPConfig(text_config=text)
    torch.manual_seed(0)
    model = CLIPModel(cfg).eval()
    # transformers >= 5.4 names the Pillow processor `...Pil`; older 5.x calls it CLIPImageProcessor
    images_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    images = images_cls(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    folder.mkdir(parents=True)
    model.save_pretrained(folder, safe_serialization=True)
    CLIPProcessor(image_processor=images, tokenizer=tok).save_pretrained(folder)
    return folder


def overrides(arch: str, model: Path | None, device: str, batch_size: int) -> dict[str, Any]:
    base = {"encoders.ocr": False, "encoders.device": device, "encoders.batch_size": batch_size}
    if arch == "offline":
        return {"profile": "offline", **base}
    return {"profile": "default", "encoders.image": str(model), "encoders.text": "none", **base}


# --- measurements ----------------------------------------------------------------------------------


def prepared(root: Path, emb: Any, cfg: Any) -> tuple[list[Any], list[Any]]:
    """Every chunk of the corpus with its frames preprocessed (untimed), in indexing order."""
    from mmrag.ingest import discover, iter_chunks

    chunks, pixels = [], []
    files, _ = discover([root], cfg.ingest)
    for path in files:
        for c in iter_chunks(path, cfg.ingest):
            pixels.append(emb.image.preprocess(c.images) if c.images else None)
            chunks.append(c)
    return chunks, pixels


def batches(chunks: list[Any], pixels: list[Any], batch_size: int) -> list[tuple[list[Any], list[Any]]]:
    """The pipeline's batches: closed at `batch_size` frames or 4x that many chunks."""
    from mmrag.encoders.base import pixel_rows

    out: list[tuple[list[Any], list[Any]]] = [([], [])]
    frames = 0
    for c, p in zip(chunks, pixels, strict=True):
        out[-1][0].append(c)
        out[-1][1].append(p)
        frames += pixel_rows(p) if p is not None else 0
        if frames >= batch_size or len(out[-1][0]) >= 4 * batch_size:
            out.append(([], []))
            frames = 0
    return [b for b in out if b[0]]


def forward_alone(emb: Any, pixels: list[Any], batch_size: int) -> dict[str, float]:
    """The image encoder alone over every frame, `batch_size` frames a pass (after a warm-up pass)."""
    from mmrag.encoders.base import concat_pixels, pixel_rows, slice_pixels

    allpix = concat_pixels([p for p in pixels if p is not None])
    n = pixel_rows(allpix)
    emb.image.encode_pixels(slice_pixels(allpix, 0, batch_size), batch_size)
    _sync(emb)
    t0 = time.perf_counter()
    for i in range(0, n, batch_size):
        emb.image.encode_pixels(slice_pixels(allpix, i, i + batch_size), batch_size)
    _sync(emb)
    return {"seconds": time.perf_counter() - t0, "frames": n}


def encoders_alone(emb: Any, chunks: list[Any], pixels: list[Any], batch_size: int) -> dict[str, float]:
    """All the model work of indexing (`encode_chunks`) on the pipeline's batches, reading excluded."""
    from mmrag.encoders.embedders import encode_chunks

    work = batches(chunks, pixels, batch_size)
    emb.recent.clear()
    t0 = time.perf_counter()
    for cs, ps in work:
        encode_chunks(cs, emb, batch_size, ps)
    _sync(emb)
    return {"seconds": time.perf_counter() - t0, "batches": len(work)}


def index_once(root: Path, idx: Path, opts: dict[str, Any], workers: int | None) -> dict[str, Any]:
    from mmrag import Pipeline

    shutil.rmtree(idx, ignore_errors=True)
    with Pipeline.from_config(index=idx, **opts, **{"ingest.workers": workers}) as p:
        report = p.index([root])
        if report.errors:
            raise SystemExit(f"indexing failed: {report.errors[:3]}")
    return {"seconds": report.seconds, "files": report.files_indexed, "points": report.points_written}


def best(runs: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The fastest of several runs, with how many there were."""
    done = list(runs)
    return {**min(done, key=lambda r: r["seconds"]), "runs": len(done)}


def _sync(emb: Any) -> None:
    if str(getattr(emb.image, "device", "cpu")).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(
    arch: str, corpus: str, root: Path, units: int, opts: dict[str, Any], args: Any
) -> dict[str, Any]:
    from mmrag.config import MMRAGConfig
    from mmrag.device import resolve_device
    from mmrag.encoders.embedders import Embedders
    from mmrag.index.workers import resolve_workers

    cfg = MMRAGConfig.load(**opts)
    emb = Embedders(cfg.encoders)  # the models load here (shared with the pipelines below)
    chunks, pixels = prepared(root, emb, cfg)
    workers = resolve_workers(args.workers, resolve_device(args.device))
    row: dict[str, Any] = {"arch": arch, "corpus": corpus, "units": units, "batch_size": args.batch_size}
    row["workers"] = workers
    # best of (at least) two: the first pass over a new shape also pays one-time kernel setup
    row["forward"] = best(forward_alone(emb, pixels, args.batch_size) for _ in range(max(2, args.repeats)))
    if emb.text is not None:
        row["encoders"] = best(
            encoders_alone(emb, chunks, pixels, args.batch_size) for _ in range(max(2, args.repeats))
        )
    del chunks, pixels
    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-idx-"))
    try:
        runs: dict[str, list[dict[str, Any]]] = {"overlapped": [], "serial": []}
        for _ in range(args.repeats):  # alternated, so slow phases of a shared machine hit both
            runs["overlapped"].append(index_once(root, work / "overlapped", opts, workers))
            runs["serial"].append(index_once(root, work / "serial", opts, 0))
        row.update({k: best(v) for k, v in runs.items()})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for key in ("forward", "encoders", "overlapped", "serial"):
        if key in row:
            row[key]["per_s"] = units / row[key]["seconds"]
    row["overlapped_vs_forward"] = row["overlapped"]["per_s"] / row["forward"]["per_s"]
    if "encoders" in row:
        row["overlapped_vs_encoders"] = row["overlapped"]["per_s"] / row["encoders"]["per_s"]
    row["overlapped_vs_serial"] = row["overlapped"]["per_s"] / row["serial"]["per_s"]
    return row


# --- report ----------------------------------------------------------------------------------------


def summary(row: dict[str, Any]) -> str:
    """One line per row: throughputs and the ratios."""
    parts = [f"{row['arch']:9s} {row['corpus']:9s}"]
    parts += [
        f"{k} {row[k]['per_s']:7.1f}/s" for k in ("forward", "encoders", "overlapped", "serial") if k in row
    ]
    parts += [
        f"overlapped/{k} {row[f'overlapped_vs_{k}']:.2f}"
        for k in ("forward", "encoders", "serial")
        if k in row
    ]
    return "  ".join(parts)


def plot(result: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["rows"]
    archs = list(dict.fromkeys(r["arch"] for r in rows))
    fig, axes = plt.subplots(1, len(archs), figsize=(4.6 * len(archs), 4.2), squeeze=False)
    series = (
        ("forward", "image encoder forward alone", "tab:gray"),
        ("encoders", "all encoders alone", "tab:olive"),
        ("overlapped", "indexing with workers", "tab:green"),
        ("serial", "indexing, serial", "tab:red"),
    )
    for ax, arch in zip(axes[0], archs, strict=True):
        mine = [r for r in rows if r["arch"] == arch]
        shown = [s for s in series if any(s[0] in r for r in mine)]
        width = 0.8 / len(shown)
        for k, (key, label, colour) in enumerate(shown):
            xs = [i + (k - (len(shown) - 1) / 2) * width for i in range(len(mine))]
            ax.bar(xs, [r[key]["per_s"] if key in r else 0 for r in mine], width, label=label, color=colour)
        values = [r[key]["per_s"] for r in mine for key, _, _ in shown if key in r]
        for i, r in enumerate(mine):
            top = max(r[key]["per_s"] for key, _, _ in shown if key in r)
            ax.text(i, top * 1.3, f"{r['overlapped_vs_forward']:.0%} of forward", ha="center", fontsize=8)
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 2, max(values) * 4)
        ax.set_xticks(range(len(mine)), [f"{r['corpus']}\n({r['units']})" for r in mine])
        ax.set_ylabel("images or pages per second (log)")
        ax.set_title(f"{arch} (batch {mine[0]['batch_size']}, {mine[0]['workers']} workers)", fontsize=10)
    handles = {h.get_label(): h for ax in axes[0] for h in ax.containers}
    fig.legend(list(handles.values()), list(handles), loc="lower center", ncol=len(handles), fontsize=8)
    fig.suptitle(f"indexing throughput, {result['machine']['device']}", fontsize=10)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(out, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", default=",".join(ARCHS), help=f"comma-separated, from {', '.join(ARCHS)}")
    ap.add_argument("--images", type=int, default=256, help="distinct JPEG files")
    ap.add_argument("--pdfs", type=int, default=3)
    ap.add_argument("--pages-per-pdf", type=int, default=24)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="reader threads (default: ingest.workers auto)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=1, help="index runs of each kind; the fastest counts")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "indexing.json")
    ap.add_argument("--plot-only", action="store_true", help="redraw the PNG from an existing --out JSON")
    args = ap.parse_args()
    if args.plot_only:
        plot(json.loads(args.out.read_text(encoding="utf-8")), args.out.with_suffix(".png"))
        return
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # tiny_models
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    archs = [a.strip() for a in args.archs.split(",") if a.strip()]
    if unknown := set(archs) - set(ARCHS):
        sys.exit(f"unknown --archs {sorted(unknown)}; choose from {', '.join(ARCHS)}")
    work = Path(tempfile.mkdtemp(prefix="mmrag-bench-indexing-"))
    result: dict[str, Any] = {
        "machine": machine(args.device),
        "load_average_before": os.getloadavg(),
        "args": {k: str(v) for k, v in vars(args).items()},
        "rows": [],
    }
    try:
        t0 = time.perf_counter()
        make_images(work / "images", args.images)
        pages = make_pdfs(work / "pdfs", args.pdfs, args.pages_per_pdf)
        print(
            f"corpus: {args.images} JPEGs, {pages} PDF pages ({time.perf_counter() - t0:.1f} s)",
            file=sys.stderr,
        )
        for arch in archs:
            model = build_clip(work / f"model-{arch}", arch) if arch != "offline" else None
            opts = overrides(arch, model, args.device, args.batch_size)
            for corpus, root, units in (
                ("images", work / "images", args.images),
                ("pdf pages", work / "pdfs", pages),
            ):
                row = measure(arch, corpus, root, units, opts, args)
                result["rows"].append(row)
                print(summary(row), file=sys.stderr)
            if model is not None:
                shutil.rmtree(model, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result["load_average_after"] = os.getloadavg()
    write_result(result, args.out, plot)
    print(json.dumps(result["rows"], indent=2))


if __name__ == "__main__":
    main()
