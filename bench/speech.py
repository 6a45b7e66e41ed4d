r"""Speech in the long-video benchmark: accuracy on the spoken facts with subtitles, with ASR only and
with neither; clip Hits@5 from transcripts; the offline ASR's word error rate; and jfk.flac.

One seed per run: the dev seed (0) chooses settings, the test seed (1) gives the reported numbers.

- `asr`: the whole benchmark (all four kinds of questions) with the soundtrack transcribed by
  Whisper tiny.en (`ingest.asr="always"`; the plain subtitles carry the other facts). Its overall
  accuracy is the long-video number; its Hits@5 on the speech questions is retrieval from transcripts.
- `subtitles`: the speech questions only, with the spoken lines given as a subtitle file, no ASR.
- `none`: the speech questions only, with neither (the spoken facts are nowhere in the index).
- `NAME:chat` (`asr:chat`, `subtitles:chat`): the same condition with the clip text scored as the
  chat reply (`text_scoring="chat"`, the method before the completion evidence), in the same run.

The word error rate compares the transcript of the benchmark's soundtrack (the cached one the `asr`
index used) with the lines espeak-ng said. jfk.flac (11 s of a 1961 speech) is transcribed and
indexed alone, and searched for "ask not what your country can do for you".

    python bench/speech.py --seed 0 --out bench/results/speech_dev.json
    python bench/speech.py --seed 1 --out bench/results/speech_test.json \
        --conditions asr,asr:chat,subtitles,subtitles:chat,none
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

JFK = Path(__file__).resolve().parents[2] / "shared" / "data" / "audio" / "jfk.flac"
PHRASE = "ask not what your country can do for you"


def condition(cfg: Any, speech: str, kinds: str = "", scoring: str = "pmi") -> dict[str, Any]:
    """One long-video run in a speech condition; its metrics (and the speech questions' rows)."""
    from dataclasses import replace

    from mmrag.evals.long_video import evaluate

    run = replace(cfg, speech=speech, kinds=kinds, ablations=False, text_scoring=scoring)
    metrics = evaluate(run, show_progress=False)
    rows = [json.loads(line) for line in (Path(metrics["run"]) / "samples.jsonl").read_text().splitlines()]
    speech_rows = [r for r in rows if r["kind"] == "speech"]
    n = len(speech_rows)
    metrics["speech_questions"] = {
        "questions": n,
        "accuracy": round(sum(r["correct_full"] for r in speech_rows) / n, 4) if n else None,
        "Hits@5": round(sum(1 for r in speech_rows if r["gt_rank"] and r["gt_rank"] <= 5) / n, 4)
        if n
        else None,
        "Hits@1": round(sum(1 for r in speech_rows if r["gt_rank"] == 1) / n, 4) if n else None,
    }
    return metrics


def transcript_wer(cfg: Any) -> dict[str, Any]:
    """WER of the (cached) transcript of the benchmark's soundtrack against the spoken lines."""
    from mmrag.evals.long_video import generated_items
    from mmrag.evals.long_video_speech import word_error_rate
    from mmrag.ingest.asr import AsrSettings, transcribe

    _, video, _ = generated_items(cfg)
    spoken = json.loads((video.parent / "benchmark.json").read_text())["spoken"]
    t0 = time.perf_counter()
    found = transcribe(video, AsrSettings(model=cfg.asr_model, beam_size=cfg.asr_beam_size))
    return {
        **word_error_rate([s[2] for s in spoken], [c.text for c in found.cues]),
        "spoken_lines": len(spoken),
        "spoken_seconds": round(sum(s[1] - s[0] for s in spoken), 1),
        "cues": len(found.cues),
        "from_cache": found.cached,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def jfk(model: str) -> dict[str, Any]:
    """Transcribe and index jfk.flac; is the phrase in the transcript, and does a search find it?"""
    from mmrag import Pipeline
    from mmrag.ingest.asr import AsrSettings, transcribe

    if not JFK.is_file():
        return {"skipped": f"{JFK} not found"}
    found = transcribe(JFK, AsrSettings(model=model))
    text = " ".join(c.text for c in found.cues)
    with tempfile.TemporaryDirectory() as tmp:
        overrides = {"encoders.ocr": False, "ingest.asr_model": model}
        with Pipeline.from_config(profile="offline", index=Path(tmp) / "idx", **overrides) as p:
            p.index([JFK])
            hits = p.search(PHRASE, k=3, modality="audio")
    with_phrase = [h for h in hits if PHRASE in (h.text or "").lower().replace(",", "")]
    return {
        "transcript": text,
        "language": found.language,
        "cues": [[c.start, c.end, c.text] for c in found.cues],
        "phrase_in_transcript": PHRASE in text.lower().replace(",", ""),
        "search": [{"path": Path(h.path).name, "locator": h.locator(), "text": h.text} for h in hits],
        "phrase_hit_rank": hits.index(with_phrase[0]) + 1 if with_phrase else None,
    }


def main() -> None:
    from mmrag.evals.long_video import EvalConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0, help="0: dev (tune), 1: test (report)")
    ap.add_argument("--questions", type=int, default=80, help="questions drawn, balanced over the four kinds")
    ap.add_argument("--asr-model", default="whisper-tiny.en")
    ap.add_argument("--asr-beam-size", type=int, default=5)
    ap.add_argument("--conditions", default="asr,subtitles,none")
    ap.add_argument("--generator", default="", help="answering model (default: the offline bridge)")
    ap.add_argument("--speech-only", action="store_true", help="asr condition: speech questions only")
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    cfg = EvalConfig(
        generator=args.generator,
        seed=args.seed,
        questions=args.questions,
        runs=args.runs,
        asr_model=args.asr_model,
        asr_beam_size=args.asr_beam_size,
    )
    result: dict[str, Any] = {"seed": args.seed, "split": "dev" if args.seed == 0 else "test"}
    result["generator"] = args.generator or "offline bridge (efficientnet-lite0 + SmolLM2-135M)"
    result["machine"] = machine(libs=("faster-whisper", "ctranslate2", "av"))
    result["conditions"] = {}
    for name in args.conditions.split(","):
        speech, _, scoring = name.partition(":")  # `asr:chat`: the same with the chat-reply text scoring
        scoring = scoring or "pmi"
        t0 = time.perf_counter()
        kinds = "" if speech == "asr" and not args.speech_only else "speech"
        m = condition(cfg, speech, kinds, scoring)
        keep = ("questions", "counts", "retrieval", "accuracy", "speech_questions", "index_seconds", "run")
        result["conditions"][name] = {k: m[k] for k in keep} | {"seconds": round(time.perf_counter() - t0)}
        result["conditions"][name]["text_scoring"] = scoring
        print(name, json.dumps(result["conditions"][name]["speech_questions"]), file=sys.stderr)
    result["wer"] = transcript_wer(cfg)
    result["jfk"] = jfk(args.asr_model)
    acc = {c: v["speech_questions"]["accuracy"] for c, v in result["conditions"].items()}
    for tag in ("", ":chat"):  # the ratio per text scoring, where both conditions ran with it
        if acc.get(f"subtitles{tag}") and acc.get(f"asr{tag}") is not None:
            key = "asr_over_subtitles" + tag.replace(":", "_")
            result[key] = round(acc[f"asr{tag}"] / acc[f"subtitles{tag}"], 4)
    write_json(result, args.out)
    print(json.dumps({k: v for k, v in result.items() if k != "machine"}, indent=1))


if __name__ == "__main__":
    main()
