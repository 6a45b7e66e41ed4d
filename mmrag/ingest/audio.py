"""Audio files (wav, mp3, m4a, flac, ogg, opus) into `audio` chunks: stretches of transcribed speech.

The file is transcribed (`mmrag.ingest.asr`, cached by content hash), and its cues are packed in
order into chunks of at most `clip_seconds` each (a single longer cue makes a chunk of its own), so
a chunk never cuts a sentence and its time range is that of the speech it holds: a hit cites
`talk.mp3 @ 00:12:31–00:12:41`, and `serve` plays the file from `t_start`.

A chunk's text is its cues' text; the payload holds `audio` (the file's stem), `clip` (index),
`subs` (`[start, end, text]` of its cues, as video clips keep theirs), `duration`, `language`,
`language_probability` and `transcript` (`asr:<model>`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.asr import AsrSettings, transcribe
from mmrag.ingest.subtitles import Cue
from mmrag.types import Chunk, MMRAGError, NothingToIndex

if TYPE_CHECKING:
    from mmrag.config import IngestConfig


def pack_cues(cues: list[Cue], seconds: float) -> list[list[Cue]]:
    """Consecutive cues grouped so that each group spans at most `seconds` (first start to last end).

    A cue longer than `seconds` is a group of its own; the order is kept and no cue is split.
    """
    if seconds <= 0:
        raise MMRAGError(f"clip_seconds must be > 0 (got {seconds})")
    groups: list[list[Cue]] = []
    for cue in cues:
        if groups and cue.end - groups[-1][0].start <= seconds:
            groups[-1].append(cue)
        else:
            groups.append([cue])
    return groups


def iter_audio_chunks(path: Path, cfg: IngestConfig, digest: str | None = None) -> Iterator[Chunk]:
    """One `audio` chunk per stretch of speech (see the module docstring).

    Args:
        path: The audio file.
        cfg: Ingest settings (`clip_seconds` and the `asr_*` fields).
        digest: The file's content hash, when the caller has it (keys the transcript cache).

    Raises:
        IngestError: corrupt, zero-length, no audio stream or an unsupported codec (the reason in words).
        NothingToIndex: the file holds no speech.
    """
    settings = AsrSettings.from_config(cfg)
    transcript = transcribe(path, settings, digest=digest)
    if not transcript.cues:
        raise NothingToIndex(f"no speech found in {transcript.duration:.1f} s of audio")
    meta: dict[str, Any] = {
        "audio": path.stem,
        "duration": round(transcript.duration, 3),
        "language": transcript.language,
        "language_probability": transcript.language_probability,
        "transcript": f"asr:{transcript.model}",
    }
    for index, group in enumerate(pack_cues(transcript.cues, float(cfg.clip_seconds))):
        t0, t1 = group[0].start, max(c.end for c in group)
        yield Chunk(
            modality="audio",
            path=str(path),
            locator=f"t={t0:.3f}-{t1:.3f}",
            text="\n".join(c.text for c in group),
            t_start=t0,
            t_end=t1,
            meta={**meta, "clip": index, "subs": [[c.start, c.end, c.text] for c in group]},
        )


__all__ = ["iter_audio_chunks", "pack_cues"]
