"""The spoken track of the generated long-video benchmark, and the word error rate of what ASR heard.

`speech` segments (`mmrag.evals.long_video_plan`) say their intro and their fact aloud instead of in
the subtitles. Each line is synthesised by espeak-ng (a Debian package: `apt-get install espeak-ng`)
in its en-us voice at `WORDS_PER_MINUTE`, placed at its start time on a silent 16 kHz track (cut at
the segment's end), and muxed into the video as AAC. The lines with the times they are actually
spoken are also written as a second subtitle file, `long_video.spoken.srt` (the regular subtitles
plus the spoken lines): the same facts given as subtitles, the reference condition of the report.

`word_error_rate` scores a transcript against the spoken lines with jiwer, after the usual
normalisation (lower case, no punctuation, number words as digits, British spellings as American),
so that "harbour"/"harbor" or "four"/"4" do not count as errors.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import wave
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmrag.types import MMRAGError

if TYPE_CHECKING:
    import numpy as np

    from mmrag.evals.long_video_plan import Segment

RATE = 16_000
WORDS_PER_MINUTE = 150
VOICE = "en-us"

SpokenCue = tuple[float, float, str]


def espeak() -> str:
    """The espeak-ng binary.

    Raises:
        MMRAGError: it is not installed (the message says how to install it).
    """
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise MMRAGError(
            "the spoken track needs espeak-ng: apt-get install espeak-ng (or generate with speech=False)"
        )
    return exe


def say(text: str) -> np.ndarray:
    """`text` spoken by espeak-ng as 16 kHz mono float32 samples."""
    import numpy as np

    args = [espeak(), "-v", VOICE, "-s", str(WORDS_PER_MINUTE), "--stdout", text]
    out = subprocess.run(args, capture_output=True, check=True).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate, data = w.getframerate(), w.readframes(w.getnframes())
    samples = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768
    n = round(len(samples) * RATE / rate)  # espeak speaks at 22,050 Hz
    grid = np.linspace(0, len(samples) - 1, n)
    return np.interp(grid, np.arange(len(samples)), samples).astype(np.float32)


def soundtrack(segments: Sequence[Segment], seconds: float) -> tuple[np.ndarray, list[SpokenCue]]:
    """The whole track (silence where nothing is said), and each spoken line with its true times."""
    import numpy as np

    track = np.zeros(round(seconds * RATE), dtype=np.float32)
    spoken: list[SpokenCue] = []
    for seg in segments:
        for start, text in seg.speech:
            voice = say(text)[: max(0, round((seg.t_end - start) * RATE))]  # never into the next segment
            i = round(start * RATE)
            track[i : i + len(voice)] = voice[: len(track) - i]
            spoken.append((start, round(start + len(voice) / RATE, 3), text))
    return track, spoken


def add_audio_stream(container: Any) -> Any:
    """An AAC mono 16 kHz stream in a container opened for writing (before anything is muxed)."""
    return container.add_stream("aac", rate=RATE, layout="mono")


def encode_audio(container: Any, stream: Any, samples: np.ndarray) -> None:
    """Encode and mux `samples` through `stream` (flushing the encoder at the end)."""
    import av

    ctx = stream.codec_context
    resampler = av.AudioResampler(
        format=ctx.codec.audio_formats[0].name, layout="mono", rate=RATE, frame_size=ctx.frame_size or None
    )
    block = 1024
    for i in range(0, len(samples), block):
        frame = av.AudioFrame.from_ndarray(samples[None, i : i + block].copy(), format="flt", layout="mono")
        frame.sample_rate = RATE
        for out in resampler.resample(frame):
            for packet in stream.encode(out):
                container.mux(packet)
    for out in resampler.resample(None):
        for packet in stream.encode(out):
            container.mux(packet)
    for packet in stream.encode(None):
        container.mux(packet)


def spoken_srt_cues(segments: Sequence[Segment], spoken: Sequence[SpokenCue]) -> list[SpokenCue]:
    """The regular subtitles plus the spoken lines, in time order."""
    return sorted([*(c for s in segments for c in s.cues), *spoken])


# --- word error rate ---------------------------------------------------------------------------------

_NUMBER_WORDS = "zero one two three four five six seven eight nine ten eleven twelve".split()
_NUMBERS = {w: str(i) for i, w in enumerate(_NUMBER_WORDS)}
_SPELLING = {"harbour": "harbor", "colour": "color", "armoury": "armory", "theatre": "theater"}


def normalise(text: str) -> str:
    """Lower case, punctuation removed, number words as digits, British spellings as American."""
    words = re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()
    return " ".join(_SPELLING.get(w, _NUMBERS.get(w, w)) for w in words)


def word_error_rate(reference: Sequence[str], hypothesis: Sequence[str]) -> dict[str, Any]:
    """WER of the hypothesis lines against the reference lines, each side joined in order.

    Returns:
        `wer`, `substitutions`, `deletions`, `insertions`, `reference_words`.
    """
    import jiwer

    ref, hyp = normalise(" ".join(reference)), normalise(" ".join(hypothesis))
    if not ref:
        raise MMRAGError("no reference words to score")
    out = jiwer.process_words(ref, hyp)
    return {
        "wer": round(out.wer, 4),
        "substitutions": out.substitutions,
        "deletions": out.deletions,
        "insertions": out.insertions,
        "reference_words": len(ref.split()),
    }


__all__ = [
    "RATE",
    "add_audio_stream",
    "encode_audio",
    "espeak",
    "normalise",
    "say",
    "soundtrack",
    "spoken_srt_cues",
    "word_error_rate",
]
