"""OCR with RapidOCR (PP-OCRv4 detector and recogniser in ONNX, shipped by `rapidocr-onnxruntime`).

    from mmrag.encoders.ocr import Ocr

    ocr = Ocr()
    text = ocr(Image.open("scan.png"))

The engine loads on the first call. Text boxes are put in reading order (rows top to bottom, boxes
left to right within a row), boxes below `min_score` are dropped, and the text is NFKC-normalised
because the recogniser, trained on Chinese and English, writes some ASCII punctuation full-width.
"""

from __future__ import annotations

import threading
import unicodedata
from typing import TYPE_CHECKING, Any

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from PIL import Image


class Ocr:
    """Text from an image, lines in reading order.

    Args:
        min_score: Drop recognised boxes with a lower confidence (0-1).
        box_thresh: Detector box threshold; RapidOCR's default (0.5) misses lines of tightly set
            text (one of five lines of skimage's `page.png`), 0.3 finds them all.
        **engine_kwargs: Passed to `RapidOCR(...)` (for example `intra_op_num_threads=2`).
    """

    def __init__(self, min_score: float = 0.5, box_thresh: float = 0.3, **engine_kwargs: Any) -> None:
        self.min_score = min_score
        self.box_thresh = box_thresh
        self._engine_kwargs = engine_kwargs
        self._engine: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._engine is None:
                try:
                    from rapidocr_onnxruntime import RapidOCR
                except ImportError as e:
                    raise MMRAGError("OCR needs rapidocr-onnxruntime: pip install 'mmrag[ocr]'") from e
                self._engine = RapidOCR(**self._engine_kwargs)
        return self._engine

    def boxes(self, image: Image.Image) -> list[tuple[list[list[float]], str, float]]:
        """Raw (corner points, text, score) boxes above `min_score`, as the engine returns them."""
        import numpy as np

        engine = self._load()
        result, _ = engine(np.asarray(image.convert("RGB")), box_thresh=self.box_thresh)
        return [
            (box, text, float(score)) for box, text, score in result or [] if float(score) >= self.min_score
        ]

    def __call__(self, image: Image.Image) -> str:
        """The image's text: one line per row of boxes, boxes in a row joined by a space."""
        return "\n".join(" ".join(text for _, text in row) for row in _rows(self.boxes(image)))


def _rows(boxes: list[tuple[list[list[float]], str, float]]) -> list[list[tuple[float, str]]]:
    """Group boxes into rows: a box joins a row when its vertical centre lies within the row's first box."""
    items = []
    for box, text, _ in boxes:
        ys = [p[1] for p in box]
        xs = [p[0] for p in box]
        text = unicodedata.normalize("NFKC", text).strip()
        if text:
            items.append((min(ys), max(ys), min(xs), text))
    items.sort()
    rows: list[tuple[float, float, list[tuple[float, str]]]] = []
    for top, bottom, left, text in items:
        centre = (top + bottom) / 2
        # compare with the row's first box only, so that one tall box cannot swallow the next rows
        if rows and rows[-1][0] <= centre <= rows[-1][1]:
            rows[-1][2].append((left, text))
        else:
            rows.append((top, bottom, [(left, text)]))
    return [sorted(members) for _, _, members in rows]
