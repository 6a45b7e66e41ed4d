"""Speech-to-text speed for `bench/video.py`: the real-time factor of faster-whisper, and video
indexing with ASR, on a narrated soundtrack that espeak-ng speaks.

The soundtrack is sentences about the cockatoo clip, spoken by espeak-ng (en-us, 150 words a
minute) one after the other with pauses of 0.5-3 s drawn from a fixed seed: about 80% speech, like
a lecture. The real-time factor is transcription seconds / audio seconds (lower is faster; 0.1 is
ten times faster than real time), measured with an empty transcript cache so nothing is reused.

The 2 cores are shared with other work, so each timing also records this process's CPU seconds:
`cpu_real_time_factor` is CPU seconds / 2 cores / audio seconds, what the wall-clock factor would be
on 2 idle cores if both were kept busy (CTranslate2 runs its int8 GEMMs on both).
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

SENTENCES = (
    "The cockatoo lifts its crest and turns toward the keeper.",
    "The keeper holds a slice of apple in her left hand.",
    "Visitors watch from behind the glass as the bird climbs the branch.",
    "It calls twice, then hops down to the water bowl.",
    "Cockatoos live for more than sixty years in captivity.",
    "This one arrived at the zoo eleven years ago from a rescue centre.",
    "Every morning it is weighed on a small scale beside the perch.",
    "The crest goes up when the bird is excited or alarmed.",
)


def narration(seconds: float, seed: int = 0) -> tuple[Any, list[str]]:
    """`seconds` of 16 kHz speech with pauses (float32 samples), and the sentences said, in order."""
    import numpy as np

    from mmrag.evals.long_video_speech import RATE, say

    rng = random.Random(seed)
    voices = {s: say(s) for s in SENTENCES}  # each sentence synthesised once
    out = np.zeros(round(seconds * RATE), dtype=np.float32)
    said: list[str] = []
    i = 0
    while True:
        i += round(rng.uniform(0.5, 3.0) * RATE)
        sentence = rng.choice(SENTENCES)
        voice = voices[sentence]
        if i + len(voice) > len(out):
            return out, said
        out[i : i + len(voice)] = voice
        said.append(sentence)
        i += len(voice)


def with_soundtrack(video: Path, samples: Any, out: Path) -> Path:
    """Remux the video packets of `video` into `out` with `samples` (16 kHz mono) as an AAC track."""
    import av

    from mmrag.evals.long_video_speech import add_audio_stream, encode_audio

    with av.open(str(video)) as inp, av.open(str(out), "w") as dst:
        stream = inp.streams.video[0]
        vout = dst.add_stream_from_template(stream)
        sound = add_audio_stream(dst)
        for packet in inp.demux(stream):
            if packet.dts is None:
                continue
            packet.stream = vout
            dst.mux(packet)
        encode_audio(dst, sound, samples)
    return out


def real_time_factor(minutes: float, model: str = "whisper-tiny.en", beam_size: int = 5) -> dict[str, Any]:
    """Transcribe `minutes` of narration with an empty cache: seconds, real-time factor, WER."""
    from mmrag.evals.long_video_speech import RATE, word_error_rate
    from mmrag.ingest.asr import AsrSettings, load_model, transcribe

    samples, said = narration(minutes * 60)
    settings = AsrSettings(model=model, beam_size=beam_size)
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "narration.wav"
        _write_wav(wav, samples, RATE)
        t0 = time.perf_counter()
        load_model(settings)
        load = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        found = transcribe(wav, settings, cache=Path(tmp) / "cache")
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    device, compute = settings.resolved()
    return {
        "model": model,
        "device": device,
        "compute_type": compute,
        "beam_size": beam_size,
        "audio_seconds": round(len(samples) / RATE, 1),
        "load_seconds": round(load, 2),
        "seconds": round(seconds, 1),
        "real_time_factor": round(seconds / (len(samples) / RATE), 4),
        "cpu_seconds": round(cpu, 1),
        "cpu_real_time_factor": round(cpu / _cores() / (len(samples) / RATE), 4),
        "cues": len(found.cues),
        **{f"wer_{k}": v for k, v in word_error_rate(said, [c.text for c in found.cues]).items()},
    }


def index_with_asr(video: Path, minutes: float, index: Path) -> dict[str, Any]:
    """Index `video` with a narration soundtrack and no subtitles (offline profile, `asr=auto`)."""
    from mmrag import Pipeline

    samples, _ = narration(minutes * 60, seed=1)
    talk = with_soundtrack(video, samples, index.parent / "talk.mp4")
    with tempfile.TemporaryDirectory() as cache:
        import os

        old = os.environ.get("MMRAG_CACHE")
        os.environ["MMRAG_CACHE"] = cache  # an empty transcript cache: the ASR runs
        try:
            with Pipeline.from_config(profile="offline", index=index, **{"ingest.asr": "auto"}) as p:
                p.embedders.image, p.embedders.text  # load the encoders outside the timing  # noqa: B018
                t0, c0 = time.perf_counter(), time.process_time()
                report = p.index([talk])
                seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
                spoken = sum(1 for h in p.store.scroll() if h["payload"].get("subtitles") == "asr")
        finally:
            if old is None:
                os.environ.pop("MMRAG_CACHE", None)
            else:
                os.environ["MMRAG_CACHE"] = old
    return {
        "video_minutes": round(minutes, 1),
        "points": report.points_written,
        "clips_with_transcript": spoken,
        "errors": [e.reason for e in report.errors],
        "seconds": round(seconds, 1),
        "index_minutes_per_video_hour": round(seconds / (minutes * 60) * 60, 2),
        "cpu_seconds": round(cpu, 1),
        "cpu_index_minutes_per_video_hour": round(cpu / _cores() / (minutes * 60) * 60, 2),
    }


def speech(video: Path, seconds: float, work: Path) -> dict[str, Any]:
    """ASR real-time factor (tiny.en int8, beam 5 and greedy) and indexing `video` with a narration."""
    import json
    import os
    import sys

    out: dict[str, Any] = {"load_average_before": os.getloadavg()}
    out["real_time_factor"] = [real_time_factor(5.0, beam_size=b) for b in (5, 1)]
    print(json.dumps(out["real_time_factor"]), file=sys.stderr)
    (work / "asr").mkdir(exist_ok=True)
    out["end_to_end"] = index_with_asr(video, seconds / 60, work / "asr" / "idx")
    out["load_average_after"] = os.getloadavg()
    out["how"] = (
        f"bench/video.py --only-asr --minutes {round(seconds / 60)}: real-time factor on 5 minutes "
        "of espeak-ng narration (80% speech), then the source loop with that narration as its "
        "soundtrack and no subtitles indexed with asr=auto (offline profile); real_time_factor is "
        f"wall time / audio time, cpu_* this process's CPU seconds / {_cores()} cores; "
        "load_average_* says how shared the cores were"
    )
    print(json.dumps(out["end_to_end"]), file=sys.stderr)
    return out


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _write_wav(path: Path, samples: Any, rate: int) -> None:
    import wave

    import numpy as np

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype(np.int16).tobytes())
