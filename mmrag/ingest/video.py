"""Videos (and animated GIFs) into clip chunks with PyAV, streaming, in memory flat with length.

A packet scan (`frames.scan_stream`, no decoding) gives the true length, the keyframes and the
embedded subtitles. Clips are then cut one of two ways (`ingest.segment`, `mmrag.ingest.clips`):

- `fixed` (default): windows of `clip_seconds` every `clip_seconds - clip_overlap` seconds
  (`shots.fixed_windows`). Each window wants `frames_per_clip` frames, one from each equal slot
  (ideally its centre); `frames.plan_steps` gets them by seeking to keyframes where that beats
  decoding on (on the bench's real 720p H.264, 45% of the frames decoded and 1.7x faster).
- `shots`: every frame is decoded; cuts are found from colour histograms (`shots.ShotDetector`) and a
  clip ends at a cut or `clip_seconds` after it began. Inside a clip the first frame of each of
  `frames_per_clip * SLOTS_PER_FRAME` time slots is kept and `frames_per_clip` of them are picked
  evenly when it closes. Streams whose packets carry no times take this path without cuts.

Only the clips being filled hold frames (at most `frames_per_clip` decoder frames per open window,
or images downscaled to 384 px), so memory does not grow with the video (bench/video.py: the same
~50 MB above the imports for 2.6 and 10 minutes of 720p).

A clip's text is the subtitles shown during it: a sidecar `<stem>.srt`/`.vtt` if there is one, else
the file's own text subtitle stream; the cues themselves, with their times, go in the payload
(`subs`). With an OCR function, the text read in the clip's middle frame is added (`ocr`).

Speech (`ingest.asr`): with `auto` a video that has neither gets its audio transcribed
(`mmrag.ingest.asr`), and the transcript's cues take the subtitles' place, the same way; `always`
adds them to the subtitles. A video without an audio stream is left as it is; one whose audio
cannot be decoded (or whose speech model does not load) is indexed from its frames, with a
warning and the reason in the payload (`asr_error`).

Times are seconds from the first frame. A last clip adding less than `MIN_TAIL_SECONDS` (or a
quarter clip) past the one before is merged into it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.ingest.clips import Clip, fixed_clips, online_clips, stream_length, video_info, video_settings
from mmrag.ingest.frames import StreamScan, load_av, open_video, scan_stream
from mmrag.ingest.subtitles import Cue, cues_between, cues_overlapping, find_subtitles, read_subtitles
from mmrag.types import Chunk, IngestError, MMRAGError

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.config import IngestConfig
    from mmrag.ingest.asr import Transcript

log = logging.getLogger("mmrag.ingest")


def _subtitles(path: Path, scan: StreamScan) -> tuple[list[Cue], str | None]:
    """Cues from the sidecar file when there is one, else from the embedded stream; and their source."""
    sidecar = find_subtitles(path)
    if sidecar is not None:
        return read_subtitles(sidecar), sidecar.suffix.lower().lstrip(".")
    if scan.cues:
        return scan.cues, f"embedded:{scan.subtitle_codec}"
    return [], None


def _speech(path: Path, cfg: IngestConfig, has_subtitles: bool) -> tuple[Transcript | None, str | None]:
    """The transcript of the video's audio when `ingest.asr` asks for one, or the reason there is none
    (None when no transcript was wanted or the video has no audio stream)."""
    mode = getattr(cfg, "asr", "never")
    if mode not in ("auto", "always", "never"):
        raise MMRAGError(f"asr must be auto, always or never (got {mode!r})")
    if mode == "never" or (mode == "auto" and has_subtitles):
        return None, None
    from mmrag.ingest.asr import AsrSettings, NoAudioStream, transcribe

    try:
        return transcribe(path, AsrSettings.from_config(cfg)), None
    except NoAudioStream:
        return None, None
    except MMRAGError as e:  # bad audio, or a speech model that does not load: the frames still count
        log.warning("%s: speech not transcribed, indexing the frames only: %s", path, e)
        return None, str(e)


def _chunk(
    path: Path, clip: Clip, index: int, cues: list[Cue], meta: dict[str, Any], ocr: Callable[..., str] | None
) -> Chunk:
    images = [img for _, img in clip.frames]
    shown = cues_overlapping(cues, clip.t0, clip.t1) if cues else []
    parts = [cues_between(shown, clip.t0, clip.t1)] if shown else []
    extra: dict[str, Any] = {
        "video": path.stem,
        "clip": index,
        "frame_times": [round(t, 3) for t, _ in clip.frames],
        "subs": [[round(c.start, 3), round(c.end, 3), c.text] for c in shown],
    }
    if clip.shot is not None:
        extra["shot"] = clip.shot
    if ocr is not None and images:
        read = ocr(images[len(images) // 2]).strip()  # the middle frame only: ~1.3 s a frame on CPU
        if read:
            extra["ocr"] = read
            parts.append(read)
    return Chunk(
        modality="video",
        path=str(path),
        locator=f"t={clip.t0:.3f}-{clip.t1:.3f}",
        text="\n".join(parts) or None,
        images=images,
        t_start=clip.t0,
        t_end=clip.t1,
        meta={**meta, **extra},
    )


def iter_video_chunks(
    path: Path, cfg: IngestConfig, ocr: Callable[[Image.Image], str] | None = None
) -> Iterator[Chunk]:
    """One `video` chunk per clip: `t_start`/`t_end`, sampled frames, subtitle (and OCR) text.

    Locators are `t=<start>-<end>` with millisecond precision. `meta` (the payload) holds `fps`,
    `width`, `height` (as displayed), `duration`, `video` (the file's stem), `clip` (index),
    `frame_times`, `subs` (`[start, end, text]` of the cues shown), `subtitles` (their source:
    `srt`, `vtt`, `embedded:<codec>`, `asr`, or `<source>+asr` with `asr="always"`), `segment`, and
    `shot` (shot mode), `ocr`, `language` and `transcript` (`asr:<model>`) and `asr_error` when set.

    Args:
        path: The video.
        cfg: Ingest settings (`clip_seconds`, `frames_per_clip`, and where present `clip_overlap`,
            `segment`, `shot_threshold`, `min_shot_seconds`, `video_sampling`, `subtitle_language`,
            `asr` and the `asr_*` settings).
        ocr: Text from an image; read on each clip's middle frame. None skips OCR.

    Raises:
        IngestError: not a video, no video stream, corrupt or truncated.
    """
    av = load_av()
    st = video_settings(cfg)
    container, stream = open_video(av, path)
    with container:
        info = video_info(container, stream)
        try:
            scan = scan_stream(av, path, subtitles=find_subtitles(path) is None, language=st.language)
        except av.error.FFmpegError as e:
            raise IngestError(f"not a video or corrupt: {e}") from e
        expected = stream_length(container, stream)
        if expected and scan.frames and scan.end < 0.9 * expected - 1.0:
            raise IngestError(f"truncated video: frames stop at {scan.end:.1f} s of {expected:.1f} s")
        if info.duration is None or (scan.end and scan.error is None):
            info.duration = scan.end or info.duration
        cues, source = _subtitles(path, scan)
        transcript, asr_error = _speech(path, cfg, source is not None)
        if transcript is not None and transcript.cues:
            cues = sorted([*cues, *transcript.cues], key=lambda c: (c.start, c.end))
            source = f"{source}+asr" if source else "asr"
        meta: dict[str, Any] = {
            "fps": info.fps,
            "width": info.width,
            "height": info.height,
            "duration": info.duration,
            "segment": "shot" if st.segment == "shots" else "window",
        }
        if source:
            meta["subtitles"] = source
        if transcript is not None:
            meta.update(language=transcript.language, transcript=f"asr:{transcript.model}")
        if asr_error:
            meta["asr_error"] = asr_error
        if scan.error:
            log.warning(
                "%s: packets unreadable after %.1f s (%s); indexing what comes before",
                path,
                scan.end,
                scan.error,
            )
        if st.segment == "fixed" and scan.frames and scan.end > 0:
            clips = fixed_clips(av, container, stream, scan, st)
        else:
            clips = online_clips(av, container, stream, info, scan, st)
        for index, clip in enumerate(clips):
            images = [img for _, img in clip.frames]
            if images and (images[0].width > images[0].height) != (info.width > info.height):
                # a display matrix turned the frames by 90 degrees: report the size as shown
                meta["width"], meta["height"] = info.height, info.width
            yield _chunk(path, clip, index, cues, meta, ocr)
