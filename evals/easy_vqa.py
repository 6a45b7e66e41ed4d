"""easy-VQA: accuracy of a bridge on the test split, against the same LLM answering without the image.

Each question is answered by likelihood over the 13 easy-VQA answers (the answer whose tokens the
model finds most likely wins), once with the image spliced in and once with the text alone, in
the same run. Reported overall and per question type (shape, colour, yes/no).

Output: `runs/easy-vqa/<timestamp>/` with `samples.jsonl`, `metrics.json`, `metrics.md` and
`config.json`, and a summary in `bench/results/easy_vqa.json` when `bench_file` is given.

Example:
    >>> from mmrag.evals.easy_vqa import evaluate
    >>> metrics = evaluate("~/.cache/mmrag/bridges/efficientnet-smollm2", n_questions=1000)
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.evals import write_json, write_run
from mmrag.train.data import Pair, easy_vqa_answers, easy_vqa_pairs, easy_vqa_root

if TYPE_CHECKING:
    from mmrag.generate.bridge import BridgeModel

SHAPES = {"circle", "rectangle", "triangle"}


def shared_easy_vqa() -> Path:
    """`$MMRAG_SHARED_DATA/vqa/easy_vqa`, by default ../shared/data beside the checkout (as in the tests)."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("MMRAG_SHARED_DATA", default)) / "vqa" / "easy_vqa"


def question_type(pair: Pair) -> str:
    """`yes/no`, `shape` or `color`, from the gold answer."""
    if pair.answer in ("yes", "no"):
        return "yes/no"
    return "shape" if pair.answer in SHAPES else "color"


@dataclass
class EvalConfig:
    """One easy-VQA evaluation run."""

    generator: str
    """Bridge folder."""
    n_questions: int = 1000
    """Questions drawn (seeded) from the test split; 0 for all 9,673."""
    seed: int = 0
    shared: str | None = None
    """easy-VQA folder holding `test/`: default ../shared/data/vqa/easy_vqa, else the package."""
    runs: str = "runs"
    device: str = "auto"
    quantize: bool | None = None


def _accuracy(rows: list[dict[str, Any]], key: str) -> dict[str, float]:
    by_type: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_type[r["type"]].append(r[key] == r["answer"])
        by_type["all"].append(r[key] == r["answer"])
    return {t: round(sum(v) / len(v), 4) for t, v in sorted(by_type.items())}


def _markdown(metrics: dict[str, Any]) -> str:
    types = list(metrics["bridge"])
    lines = ["| model | " + " | ".join(types) + " |", "|---" * (len(types) + 1) + "|"]
    for name in ("bridge", "text_only"):
        lines.append(f"| {name} | " + " | ".join(f"{metrics[name][t]:.3f}" for t in types) + " |")
    counts = metrics["counts"]
    lines.append("| questions | " + " | ".join(str(counts[t]) for t in types) + " |")
    return "\n".join(lines) + "\n"


def score_all(
    bridge: BridgeModel, pairs: list[Pair], answers: list[str], progress: Any = None
) -> list[dict[str, Any]]:
    """Both predictions (with and without the image) for every pair."""
    import torch

    from mmrag.train.projector import feature_cache

    images = sorted({p.image for p in pairs})
    feats = feature_cache(bridge, images)  # each image through the tower once
    index = {img: i for i, img in enumerate(images)}
    task = progress.add_task("easy-VQA", total=len(pairs)) if progress else None
    rows = []
    text_only_memo: dict[str, list[float]] = {}  # questions repeat across images; without one, so do scores
    for p in pairs:
        vf = feats[index[p.image]][None]
        with_image = bridge.score_choices(None, p.question, answers, vision_features=vf)
        if p.question not in text_only_memo:
            text_only_memo[p.question] = bridge.score_choices(None, p.question, answers)
        text_only = text_only_memo[p.question]
        rows.append(
            {
                "image": Path(p.image).name,
                "question": p.question,
                "answer": p.answer,
                "type": question_type(p),
                "bridge": answers[int(torch.tensor(with_image).argmax())],
                "text_only": answers[int(torch.tensor(text_only).argmax())],
            }
        )
        if progress:
            progress.advance(task)
    return rows


def evaluate(
    cfg: EvalConfig, bench_file: str | Path | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Run the evaluation; returns the metrics and writes the run folder (and `bench_file`)."""
    from rich.progress import Progress

    from mmrag.generate.bridge import BridgeModel
    from mmrag.generate.loader import require_generator

    require_generator(cfg.generator)  # an untrained bridge: one line saying what to run, before any work
    shared = cfg.shared or (str(shared_easy_vqa()) if shared_easy_vqa().is_dir() else None)
    root = easy_vqa_root("test", shared)
    pairs = easy_vqa_pairs("test", shared)
    if cfg.n_questions and cfg.n_questions < len(pairs):
        pairs = random.Random(cfg.seed).sample(pairs, cfg.n_questions)
    answers = easy_vqa_answers(root)
    t0 = time.perf_counter()
    bridge = BridgeModel.load(Path(cfg.generator).expanduser(), device=cfg.device, quantize=cfg.quantize)
    with Progress(disable=not show_progress) as progress:
        rows = score_all(bridge, pairs, answers, progress)
    seconds = time.perf_counter() - t0
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        counts[r["type"]] += 1
        counts["all"] += 1
    metrics = {
        "suite": "easy-vqa",
        "split": "test",
        "data": str(root),
        "questions": len(rows),
        "bridge": _accuracy(rows, "bridge"),
        "text_only": _accuracy(rows, "text_only"),
        "counts": dict(sorted(counts.items())),
        "seconds": round(seconds, 1),
        "protocol": "likelihood ranking over the 13 answers; text_only = same LLM, no image",
        "generator": str(cfg.generator),
        "bridge_config": bridge.config.to_dict(),
    }
    run = write_run(cfg.runs, "easy-vqa", rows, metrics, _markdown(metrics), asdict(cfg))
    metrics["run"] = str(run)
    if bench_file is not None:
        train = Path(cfg.generator).expanduser() / "train_metrics.json"
        if train.is_file():
            metrics["training"] = {k: v for k, v in json.loads(train.read_text()).items() if k != "config"}
        write_json(bench_file, metrics)
    return metrics
