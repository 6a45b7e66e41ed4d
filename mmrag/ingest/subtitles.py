"""SubRip (`.srt`) and WebVTT (`.vtt`) subtitles: cues with times, for the text of video clips.

One lenient line-based parser reads both formats: a cue starts at a timing line
(`00:01:02,500 --> 00:01:04,000`, hours optional, `,` or `.` before the milliseconds, WebVTT cue
settings after the end time) and runs to the next blank line. Whatever is not inside a cue (cue
numbers, the `WEBVTT` header, `NOTE`/`STYLE`/`REGION` blocks, garbage) is skipped, and so are cues
with unreadable times, an end before the start or no text. Markup (`<i>`, `<v Name>`, `<c.cls>`,
inline timestamps, `{\\an8}`) is removed and HTML entities are decoded.

The ready-made parsers did not fit: `srt` stops at the first malformed cue, and `pysubs2` glues a
malformed cue's lines onto the previous cue and leaves entities encoded. `read_subtitles` logs one
warning per file that had malformed cues, with their line numbers.

Subtitle streams inside a video (`subrip`, `ass`/`ssa`, `webvtt` in MKV/WebM, `mov_text` in MP4/MOV)
are decoded with PyAV (`read_embedded_subtitles`, or `embedded_cues` on packets the video reader
demuxes anyway); FFmpeg hands every text format over as an ASS dialogue line, whose override blocks
(`{\\i1}`) and escapes (`\\N`, `\\h`) are removed. Bitmap subtitles (DVD, PGS) are not read.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.ingest.text import decode_text
from mmrag.types import IngestError, MMRAGError

log = logging.getLogger("mmrag.ingest")

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s|$)")
# a timing line gone wrong ("00:03.000 -> 00:04.000", "1:02 -- > 1:05"), where a cue may start
_LOOKS_TIMED = re.compile(r"^\s*\d[\d:.,]*\s*-+\s*>")
_TAG = re.compile(r"<[^>\n]*>")
_SSA_OVERRIDE = re.compile(r"\{\\[^}\n]*\}")
_SPACES = re.compile(r"[ \t\u00a0]+")
# ASS escapes: \N and \n are line breaks, \h a hard space
_ASS_ESCAPE = re.compile(r"\\[Nnh]")


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


def _parse(text: str) -> tuple[list[Cue], list[int]]:
    """Cues sorted by start, and the line numbers (1-based) of the malformed cues that were skipped."""
    cues: list[Cue] = []
    bad: list[int] = []
    current: tuple[int, float, float, list[str]] | None = None

    def close(before_next_timing: bool) -> None:
        if current is None:
            return
        line_no, start, end, lines = current
        if before_next_timing and lines and lines[-1].strip().isdigit():
            lines = lines[:-1]  # an SRT cue number with no blank line before it
        body = _clean(lines)
        if end < start:
            bad.append(line_no)
        elif body:  # a cue with no text (a clearing cue) is legal, and says nothing
            cues.append(Cue(start, end, body))

    for no, line in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        m = _TIMING.match(line)
        if m:
            close(before_next_timing=True)
            g = m.groups()
            if int(g[2]) >= 60 or int(g[6]) >= 60 or int(g[1]) >= 60 or int(g[5]) >= 60:
                current = None  # unreadable time: skip this cue
                bad.append(no)
                continue
            current = (no, _seconds(*g[:4]), _seconds(*g[4:]), [])
        elif "-->" in line or (current is None and _LOOKS_TIMED.match(line)):
            # a timing line that does not parse (cue text may not hold "-->" in WebVTT)
            close(before_next_timing=True)
            current = None
            bad.append(no)
        elif not line.strip():
            close(before_next_timing=False)
            current = None
        elif current is not None:
            current[3].append(line)
    close(before_next_timing=False)
    cues.sort(key=lambda c: (c.start, c.end))
    return cues, sorted(bad)


def parse_srt(text: str) -> list[Cue]:
    """Cues of a SubRip file's text, sorted by start; malformed cues are skipped."""
    return _parse(text)[0]


def parse_vtt(text: str) -> list[Cue]:
    """Cues of a WebVTT file's text, sorted by start; header, notes, styles and bad cues are skipped."""
    return _parse(text)[0]


def read_subtitles(path: Path) -> list[Cue]:
    """Read an `.srt` or `.vtt` file (UTF-8 with or without BOM, UTF-16 with BOM, else cp1252/latin-1).

    Malformed cues (unreadable times, an end before the start) are skipped with one logged warning
    (logger `mmrag.ingest`) that names the file and their lines.

    Raises:
        IngestError: the file cannot be read.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise IngestError(f"cannot read subtitles {path}: {e.strerror or e}") from e
    cues, bad = _parse(decode_text(data))
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (", ..." if len(bad) > 10 else "")
        log.warning("%s: skipped %d malformed subtitle cue(s) at line(s) %s", path, len(bad), shown)
    return cues


SUBTITLE_SUFFIXES = (".srt", ".vtt", ".SRT", ".VTT", ".Srt", ".Vtt")
"""A video's sidecar subtitle suffixes, in the order they are looked for."""


def find_subtitles(video: Path) -> Path | None:
    """The sidecar subtitle file of a video: `<stem>.srt` or `<stem>.vtt` beside it (any case)."""
    video = Path(video)
    for ext in SUBTITLE_SUFFIXES:
        candidate = video.with_suffix(ext)
        if candidate.is_file():
            return candidate
    return None


def cues_overlapping(cues: list[Cue], t0: float, t1: float) -> list[Cue]:
    """The cues shown during `[t0, t1)` (sorted by start, as `cues` is).

    A cue counts when it overlaps the span; a zero-length cue counts when it starts inside it.
    """
    out: list[Cue] = []
    for cue in cues:
        if cue.start >= t1:
            break
        if cue.end > t0 if cue.end > cue.start else cue.start >= t0:
            out.append(cue)
    return out


def cues_between(cues: list[Cue], t0: float, t1: float) -> str:
    """Text of the cues shown during `[t0, t1)`, one cue a line, repeated lines once.

    A cue counts when it overlaps the span; a zero-length cue counts when it starts inside it.
    Repeats are dropped because roll-up captions (YouTube's) show each line in two cues.
    """
    out: list[str] = []
    for cue in cues_overlapping(cues, t0, t1):
        if not out or out[-1] != cue.text:
            out.append(cue.text)
    return "\n".join(out)


# --- subtitle streams inside the video ----------------------------------------------------------


def ass_text(dialogue: str) -> str:
    """Plain text of an ASS dialogue text: override blocks and markup removed, `\\N` as a space."""
    return _clean(_ASS_ESCAPE.sub(" ", dialogue).splitlines())


def subtitle_stream(container: Any, language: str | None = None) -> Any | None:
    """The text subtitle stream to read: the one in `language` (ISO 639-2, e.g. `eng`), else the
    default one, else the first; None when the file has no text subtitle stream."""
    streams = [s for s in container.streams.subtitles if getattr(s.codec_context.codec, "text_sub", True)]
    if not streams:
        return None
    if language:
        chosen = [s for s in streams if (s.language or "").lower() == language.lower()]
        if chosen:
            return chosen[0]
    default = [s for s in streams if int(getattr(s, "disposition", 0) or 0) & 1]  # AV_DISPOSITION_DEFAULT
    return (default or streams)[0]


def _item_text(item: Any) -> str:
    """Text of one decoded subtitle rectangle (ASS line or plain text; bitmaps have none)."""
    dialogue = getattr(item, "dialogue", None)
    if dialogue:
        return ass_text(dialogue.decode("utf-8", "replace"))
    ass = getattr(item, "ass", None)
    if ass:  # "ReadOrder,Layer,Style,Name,MarginL,MarginR,MarginV,Effect,Text"
        return ass_text(ass.decode("utf-8", "replace").split(",", 8)[-1])
    text = getattr(item, "text", None)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
    return _clean(text.splitlines())


def embedded_cues(packets: Iterable[Any], stream: Any, offset: float = 0.0) -> list[Cue]:
    """Decode the subtitle packets of `stream` into cues, sorted; times are shifted by `-offset`.

    A packet without a duration lasts until the display end the decoder reports, else to the next
    cue's start. Packets that fail to decode are skipped (and counted in one logged warning).
    """
    tb = stream.time_base
    raw: list[tuple[float, float | None, str]] = []
    failed = 0
    for packet in packets:
        if packet.pts is None or tb is None:
            continue
        start = float(packet.pts * tb) - offset
        end = start + float(packet.duration * tb) if packet.duration else None
        try:
            items = list(packet.decode())
        except Exception:  # any decoder failure: one bad cue, not a bad video
            failed += 1
            continue
        for item in items:
            shown = getattr(item, "end_display_time", 0) or 0  # milliseconds, when the packet has none
            until = end if end is not None else (start + shown / 1000 if shown else None)
            for rect in getattr(item, "rects", None) or [item]:  # older PyAV: a SubtitleSet of rects
                text = _item_text(rect)
                if text:
                    raw.append((start, until, text))
    if failed:
        log.warning("skipped %d subtitle packet(s) that did not decode", failed)
    raw.sort(key=lambda r: r[0])
    cues = []
    for i, (start, end, text) in enumerate(raw):
        if end is None:
            end = raw[i + 1][0] if i + 1 < len(raw) else start
        cues.append(Cue(max(0.0, start), max(0.0, end, start), text))
    return cues


def read_embedded_subtitles(path: Path, language: str | None = None) -> list[Cue]:
    """Cues of the text subtitle stream inside a video (`subtitle_stream` picks which); [] when none.

    Times are seconds from the video stream's start, as the clip times are.

    Raises:
        IngestError: the file cannot be opened as a media file.
    """
    try:
        import av
    except ImportError as e:
        raise MMRAGError("reading videos needs PyAV: pip install av") from e
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as e:
        raise IngestError(f"not a video or corrupt: {e}") from e
    with container:
        stream = subtitle_stream(container, language)
        if stream is None:
            return []
        video = container.streams.video[0] if container.streams.video else None
        offset = 0.0
        if video is not None and video.start_time is not None and video.time_base is not None:
            offset = float(video.start_time * video.time_base)
        try:
            return embedded_cues(container.demux(stream), stream, offset)
        except av.error.FFmpegError as e:
            raise IngestError(f"cannot read the subtitle stream: {e}") from e
