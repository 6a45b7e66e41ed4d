"""SubRip (`.srt`) and WebVTT (`.vtt`) subtitles: cues with times, for the text of video clips.

One lenient line-based parser reads both formats: a cue starts at a timing line
(`00:01:02,500 --> 00:01:04,000`, hours optional, `,` or `.` before the milliseconds, WebVTT cue
settings after the end time) and runs to the next blank line. Whatever is not inside a cue (cue
numbers, the `WEBVTT` header, `NOTE`/`STYLE`/`REGION` blocks, garbage) is skipped, and so are cues
with unreadable times, an end before the start or no text. Markup (`<i>`, `<v Name>`, `<c.cls>`,
inline timestamps, `{\\an8}`) is removed and HTML entities are decoded.

The ready-made parsers did not fit: `srt` stops at the first malformed cue, and `pysubs2` glues a
malformed cue's lines onto the previous cue and leaves entities encoded.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from pathlib import Path

from mmrag.ingest.text import decode_text
from mmrag.types import IngestError

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s|$)")
_TAG = re.compile(r"<[^>\n]*>")
_SSA_OVERRIDE = re.compile(r"\{\\[^}\n]*\}")
_SPACES = re.compile(r"[ \t\u00a0]+")


@dataclass(frozen=True)
class Cue:
    """One subtitle: shown from `start` to `end` (seconds)."""

    start: float
    end: float
    text: str


def _seconds(h: str | None, m: str, s: str, frac: str | None) -> float:
    # "5" after the comma means 500 ms in both formats' loose real-world use: pad on the right
    millis = int((frac or "0").ljust(3, "0"))
    return int(h or 0) * 3600 + int(m) * 60 + int(s) + millis / 1000


def _clean(lines: list[str]) -> str:
    text = " ".join(line.strip() for line in lines if line.strip())
    text = _SSA_OVERRIDE.sub("", _TAG.sub("", text))
    return _SPACES.sub(" ", html.unescape(text)).strip()


def _parse(text: str) -> list[Cue]:
    cues: list[Cue] = []
    current: tuple[float, float, list[str]] | None = None

    def close(before_next_timing: bool) -> None:
        if current is None:
            return
        start, end, lines = current
        if before_next_timing and lines and lines[-1].strip().isdigit():
            lines = lines[:-1]  # an SRT cue number with no blank line before it
        body = _clean(lines)
        if body and end >= start:
            cues.append(Cue(start, end, body))

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        m = _TIMING.match(line)
        if m:
            close(before_next_timing=True)
            g = m.groups()
            if int(g[2]) >= 60 or int(g[6]) >= 60 or int(g[1]) >= 60 or int(g[5]) >= 60:
                current = None  # unreadable time: skip this cue
                continue
            current = (_seconds(*g[:4]), _seconds(*g[4:]), [])
        elif not line.strip():
            close(before_next_timing=False)
            current = None
        elif current is not None:
            current[2].append(line)
    close(before_next_timing=False)
    cues.sort(key=lambda c: (c.start, c.end))
    return cues


def parse_srt(text: str) -> list[Cue]:
    """Cues of a SubRip file's text, sorted by start; malformed cues are skipped."""
    return _parse(text)


def parse_vtt(text: str) -> list[Cue]:
    """Cues of a WebVTT file's text, sorted by start; header, notes, styles and bad cues are skipped."""
    return _parse(text)


def read_subtitles(path: Path) -> list[Cue]:
    """Read an `.srt` or `.vtt` file (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252/latin-1).

    Raises:
        IngestError: the file cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read subtitles {path}: {e.strerror or e}") from e
    text = decode_text(data)
    return parse_vtt(text) if Path(path).suffix.lower() == ".vtt" else parse_srt(text)


def find_subtitles(video: Path) -> Path | None:
    """The sidecar subtitle file of a video: `<stem>.srt` or `<stem>.vtt` beside it (any case)."""
    video = Path(video)
    for ext in (".srt", ".vtt", ".SRT", ".VTT", ".Srt", ".Vtt"):
        candidate = video.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def cues_between(cues: list[Cue], t0: float, t1: float) -> str:
    """Text of the cues shown during `[t0, t1)`, one cue a line, repeated lines once.

    A cue counts when it overlaps the span; a zero-length cue counts when it starts inside it.
    Repeats are dropped because roll-up captions (YouTube's) show each line in two cues.
    """
    out: list[str] = []
    for cue in cues:
        if cue.start >= t1:
            break
        inside = cue.end > t0 if cue.end > cue.start else cue.start >= t0
        if inside and (not out or out[-1] != cue.text):
            out.append(cue.text)
    return "\n".join(out)
