"""Image-text pairs for projector training: the easy-VQA package, a JSONL file, or a folder of captions.

Every source yields `Pair(image, question, answer)`; a caption becomes the answer to a fixed
captioning question, so captioning and VQA data train the same way.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from mmrag.types import MMRAGError

CAPTION_QUESTION = "Describe the image."
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


@dataclass(frozen=True)
class Pair:
    """One training or evaluation example."""

    image: str
    question: str
    answer: str


def easy_vqa_root(split: str, shared: str | Path | None = None) -> Path:
    """Folder of an easy-VQA split (`questions.json` + `images/`).

    Prefers `shared/<split>` when given and present, else the split shipped by the `easy-vqa` package.
    """
    if split not in ("train", "test"):
        raise MMRAGError(f"easy-VQA has splits train and test, not {split!r}")
    if shared is not None and (Path(shared) / split / "questions.json").is_file():
        return Path(shared) / split
    spec = importlib.util.find_spec("easy_vqa")
    if spec is None or not spec.submodule_search_locations:
        raise MMRAGError("easy-VQA data needs the easy-vqa package: pip install 'mmrag[train]'")
    return Path(next(iter(spec.submodule_search_locations))) / "data" / split


def easy_vqa_answers(root: Path) -> list[str]:
    """The 13 answers (`answers.txt` beside the split folders)."""
    path = root.parent / "answers.txt"
    if not path.is_file():
        raise MMRAGError(f"{path}: easy-VQA answers file not found")
    return [a.strip() for a in path.read_text(encoding="utf-8").splitlines() if a.strip()]


def easy_vqa_pairs(split: str = "train", shared: str | Path | None = None) -> list[Pair]:
    """All question/answer pairs of an easy-VQA split, with absolute image paths."""
    root = easy_vqa_root(split, shared)
    path = root / "questions.json"
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{path}: cannot read easy-VQA questions: {e}") from e
    return [Pair(str(root / "images" / f"{img}.png"), str(q), str(a)) for q, a, img in rows]


def jsonl_pairs(path: str | Path) -> list[Pair]:
    """Pairs from JSONL lines `{"image": ..., "question": ..., "answer": ...}` or `{"image", "caption"}`.

    Relative image paths are resolved against the file's folder.
    """
    src = Path(path)
    pairs = []
    try:
        lines = src.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise MMRAGError(f"{src}: cannot read: {e}") from e
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            image = src.parent / row["image"]
            answer = row.get("answer", row.get("caption"))
            if answer is None:
                raise KeyError("answer or caption")
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise MMRAGError(f"{src}:{n}: bad training line ({e})") from e
        pairs.append(Pair(str(image), str(row.get("question", CAPTION_QUESTION)), str(answer)))
    return pairs


def folder_pairs(folder: str | Path) -> list[Pair]:
    """Pairs from images with a same-named `.txt` caption beside them."""
    root = Path(folder)
    pairs = []
    for img in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        cap = img.with_suffix(".txt")
        if cap.is_file():
            pairs.append(Pair(str(img), CAPTION_QUESTION, cap.read_text(encoding="utf-8").strip()))
    if not pairs:
        raise MMRAGError(f"{root}: no image with a same-named .txt caption found")
    return pairs


def load_pairs(data: str, split: str = "train") -> list[Pair]:
    """`easy-vqa`, a `.jsonl` file, or a folder of image + caption files."""
    if data == "easy-vqa":
        return easy_vqa_pairs(split)
    path = Path(data)
    if path.is_dir():
        return folder_pairs(path)
    if path.suffix == ".jsonl":
        return jsonl_pairs(path)
    raise MMRAGError(
        f"{data}: training data must be 'easy-vqa', a .jsonl file or a folder of captioned images"
    )
