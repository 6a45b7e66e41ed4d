"""Whisper base against tiny.en, side by side: speed on a narration, and the spoken benchmark's numbers.

For each model, in one run: the real-time factor of transcribing `--minutes` of espeak-ng narration
with an empty cache (`asr_speed.real_time_factor`: wall clock, and CPU seconds / cores / audio seconds,
which is what the wall clock would be on idle cores), its word error rate, and beside them the spoken
questions of the long-video benchmark from `bench/speech.py` runs of the same split, one per model
(`--speech MODEL=FILE`): WER on the benchmark's soundtrack, clip Hits@5 from transcripts, and the
accuracy of speech questions from ASR alone over that from a subtitle file.

The offline default becomes `whisper-base` only if it wins on dev at a real-time factor of at most
0.15 (`--limit`).

    python bench/speech.py --seed 0 --asr-model whisper-base --generator smollm2-135m \\
        --conditions asr,subtitles --speech-only --out bench/results/speech_dev_whisper-base.json
    python bench/asr_models.py --speech whisper-base=bench/results/speech_dev_whisper-base.json \\
        --speech whisper-tiny.en=bench/results/speech_dev_whisper-tiny.en.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from asr_speed import real_time_factor  # noqa: E402
from common import machine, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def speech_numbers(path: Path) -> dict[str, Any]:
    """What a `bench/speech.py` result says about its ASR: split, WER, Hits@5, ASR over subtitles."""
    d = json.loads(path.read_text())
    asr = d["conditions"]["asr"]["speech_questions"]
    subs = d["conditions"]["subtitles"]["speech_questions"]
    return {
        "file": f"bench/results/{path.name}" if path.parent.resolve() == RESULTS.resolve() else path.name,
        "split": d["split"],
        "generator": d["generator"],
        "benchmark_wer": d["wer"]["wer"],
        "speech_questions": asr["questions"],
        "asr_accuracy": asr["accuracy"],
        "subtitles_accuracy": subs["accuracy"],
        "asr_over_subtitles": d["asr_over_subtitles"],
        "asr_hits@5": asr["Hits@5"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="whisper-tiny.en,whisper-base")
    ap.add_argument("--minutes", type=float, default=1.0, help="narration transcribed for the speed")
    ap.add_argument("--speech", action="append", default=[], help="MODEL=FILE of a bench/speech.py run")
    ap.add_argument("--limit", type=float, default=0.15, help="real-time factor a new default must meet")
    ap.add_argument("--out", type=Path, default=RESULTS / "asr_models.json")
    args = ap.parse_args()
    runs = dict(s.split("=", 1) for s in args.speech)
    models: dict[str, Any] = {}
    for m in [m.strip() for m in args.models.split(",") if m.strip()]:
        models[m] = {"speed": real_time_factor(args.minutes, m)}
        if m in runs:
            models[m]["speech"] = speech_numbers(Path(runs[m]))
        print(m, json.dumps(models[m]), flush=True)
    result = {
        "bench": "asr_models",
        "machine": machine(libs=["faster-whisper", "ctranslate2"]),
        "minutes": args.minutes,
        "real_time_factor_limit": args.limit,
        "models": models,
    }
    write_json(result, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
