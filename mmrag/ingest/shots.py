"""Where video clips start and end: fixed windows with overlap, or shots found from frame differences.

Fixed windows of `length` seconds start every `length - overlap` seconds and cover the video with no
gap; the last window ends at the video's end, and when what it adds past the window before is
shorter than `min_tail` it is folded into that window (so no clip is a sliver).

Shots: each analysed frame is shrunk to 64x36, turned into an HSV colour histogram (8 hue x 4
saturation x 4 value bins), and compared with the previous analysed frame by total variation
distance (half the L1 distance of the normalised histograms: 0 for the same colours, 1 for
disjoint ones). A cut is where the distance exceeds `threshold`, or half of it while standing well
above the recent frame-to-frame distances (`ShotDetector`), unless the current shot is still
shorter than `min_shot` seconds (flashes and fast pans stay inside one shot). Histograms ignore
where colours are, so motion within a shot scores low and a change of scene scores high; a slow
dissolve spreads its change over many frames and may go unnoticed (the windows of a long shot still
cut it into clips).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SIGNATURE_SIZE = (64, 36)
"""Width and height frames are shrunk to before their histogram (the shape hardly matters)."""
HSV_BINS = (8, 4, 4)


def fixed_windows(
    duration: float, length: float, overlap: float = 0.0, min_tail: float = 1.0
) -> list[tuple[float, float]]:
    """`(start, end)` windows over `[0, duration]`: every `length - overlap` seconds, `length` long.

    Args:
        duration: Video length in seconds (> 0; a 0-length video gets one empty window).
        length: Window length in seconds (> 0).
        overlap: Seconds shared by neighbouring windows (0 <= overlap < length).
        min_tail: A last window adding less than this past the one before is merged into it.

    Returns:
        Windows in order; the first starts at 0, the last ends at `duration`, and each starts before
        the previous one ends (no gaps).

    Raises:
        ValueError: bad length or overlap.
    """
    if length <= 0 or not 0 <= overlap < length:
        raise ValueError(f"need clip length > 0 and 0 <= overlap < length (got {length}, {overlap})")
    stride = length - overlap
    windows = [(0.0, min(length, duration))]
    k = 0
    while k * stride + length < duration:
        k += 1
        # start times from the index, not by adding strides: no drift over thousands of windows
        windows.append((k * stride, min(k * stride + length, duration)))
    if len(windows) > 1 and windows[-1][1] - windows[-2][1] < min_tail:
        windows.pop()
        windows[-1] = (windows[-1][0], duration)
    return windows


def hsv_histogram(rgb: np.ndarray) -> np.ndarray:
    """Normalised HSV histogram (`HSV_BINS`, flattened) of an RGB uint8 array (H, W, 3)."""
    from PIL import Image

    hsv = np.asarray(Image.fromarray(np.ascontiguousarray(rgb), "RGB").convert("HSV"), dtype=np.int32)
    hb, sb, vb = HSV_BINS
    index = (hsv[..., 0] * hb >> 8) * (sb * vb) + (hsv[..., 1] * sb >> 8) * vb + (hsv[..., 2] * vb >> 8)
    counts = np.bincount(index.ravel(), minlength=hb * sb * vb).astype(np.float32)
    return counts / max(1.0, float(counts.sum()))


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total variation distance of two normalised histograms, in [0, 1]."""
    return 0.5 * float(np.abs(a - b).sum())


@dataclass
class ShotDetector:
    """Finds cuts in a stream of (time, histogram) pairs, one pass, constant memory.

    A change is a cut when its distance exceeds `threshold`, or exceeds half of it while being
    `ratio` times the mean of the last `window` distances: a cut between two quiet shots stands out
    from the frame-to-frame motion before it even when their colours are alike (on the real clips
    of tests/test_video_ingest.py a bikes cut scores 0.41 against ~0.09 around it, while the
    busiest non-cut scores 0.23 against ~0.16).

    Args:
        threshold: Histogram distance above which a change is always a cut.
        min_shot: Seconds a shot lasts at least: a cut closer than this to the last one is ignored.
        ratio: How far above the recent mean a change between half and all of `threshold` must be.
        window: Distances the recent mean is taken over.
    """

    threshold: float = 0.5
    min_shot: float = 1.0
    ratio: float = 3.0
    window: int = 10
    _last: np.ndarray | None = field(default=None, repr=False)
    _shot_start: float = 0.0
    distances: list[float] = field(default_factory=list, repr=False)
    """The last `window` distances."""

    def push(self, t: float, histogram: np.ndarray) -> bool:
        """Feed the next analysed frame; True when a new shot starts at `t`."""
        prev, self._last = self._last, histogram
        if prev is None:
            self._shot_start = t
            return False
        d = histogram_distance(prev, histogram)
        recent = sum(self.distances) / len(self.distances) if self.distances else 0.0
        self.distances = [*self.distances[-(self.window - 1) :], d] if self.window > 1 else [d]
        big = d > self.threshold or (d > self.threshold / 2 and d > self.ratio * recent)
        if big and t - self._shot_start >= self.min_shot:
            self._shot_start = t
            return True
        return False


@dataclass
class Segment:
    """A clip being filled: `[t0, t1)`, its index, and the shot it belongs to (shot mode)."""

    index: int
    t0: float
    t1: float
    shot: int | None = None


class ShotWindows:
    """Turns cuts into clip segments online: a clip ends at a cut, or `length` seconds after it began
    (a long shot is cut into `length`-second windows)."""

    def __init__(self, length: float) -> None:
        self.length = length
        self.shot = 0
        self.current = Segment(0, 0.0, length, shot=0)

    def advance(self, t: float, cut: bool) -> list[Segment]:
        """Move to time `t` (the next frame); returns the segments that ended before it, in order."""
        done: list[Segment] = []
        if cut:
            self.shot += 1
            self.current.t1 = t
            done.append(self.current)
            self.current = Segment(self.current.index + 1, t, t + self.length, shot=self.shot)
        while t >= self.current.t1:  # a long shot, or a gap in the frames: window after window
            c = self.current
            done.append(c)
            self.current = Segment(c.index + 1, c.t1, c.t1 + self.length, shot=c.shot)
        return done
