"""TVQA-long (Goldfish): episodes made of TVQA clips, questions asked against the whole episode.

Layout (Hugging Face dataset `Vision-CAIR/TVQA-Long`, BSD-3):

- `tvqa_val_edited.json`: `{show: {season: {episode: {"clips": [vid_name, ...], "questions": [...]}}}}`,
  e.g. `["Friends"]["season_2"]["episode_5"]`; a question holds `q`, `a0`..`a4`, `answer_idx`,
  `vid_name` (the clip its answer sits in), and usually `qid`, `show_name`, `ts`.
- `tvqa_preprocessed_subtitles.json`: `[{"vid_name": ..., "sub": [{"start", "end", "text"}]}]`, times
  in seconds within the clip.
- frames: one folder of JPEGs per clip at 3 fps, `<frames root>/<vid_name>/` or, as TVQA ships them,
  `<frames root>/<show>_frames/<vid_name>/` (`frames_hq/friends_frames/friends_s02e05_seg02_clip_00/`).

An episode becomes one long pseudo-video: its clips in name order, back to back, each clip one
`video` point spanning `[offset, offset + duration]` with its subtitles as text and its frames'
folder in the payload (`frame_dir`), so retrieval and answering run as on a real long video. A
clip's duration is its frame count / 3 fps, else its last subtitle's end.

The Big Bang Theory's clip names carry no show prefix in some files (`s01e01_seg01_clip_00`) and one
(`bbt_...`) in others; lookups try both.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import Chunk, MMRAGError

if TYPE_CHECKING:
    from mmrag.evals.long_video_config import EvalConfig, Item
    from mmrag.pipeline import Pipeline

TVQA_FPS = 3.0
PREFIXES = ("bbt", "castle", "friends", "grey", "house", "met")
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class TVQAQuestion:
    """One 5-choice question; `vid_name` is the clip holding the answer."""

    qid: str
    q: str
    choices: list[str]
    answer_idx: int
    vid_name: str
    ts: str | None = None


@dataclass
class TVQAEpisode:
    """An episode: its clips (in name order) and its questions."""

    show: str
    season: str
    episode: str
    clips: list[str]
    questions: list[TVQAQuestion] = field(default_factory=list)

    @property
    def key(self) -> str:
        """The episode's pseudo-video path in the index: `tvqa/<show>/<season>/<episode>`."""
        return f"tvqa/{self.show}/{self.season}/{self.episode}".replace(" ", "_")


def _read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{path}: cannot read {what}: {e}") from e


def _question(raw: Any, where: str) -> TVQAQuestion:
    try:
        choices = [str(raw[f"a{i}"]) for i in range(5)]
        idx = int(raw["answer_idx"])
        q = TVQAQuestion(
            str(raw.get("qid", "")), str(raw["q"]), choices, idx, str(raw["vid_name"]), raw.get("ts")
        )
    except (KeyError, TypeError, ValueError) as e:
        raise MMRAGError(f"{where}: bad question ({type(e).__name__}: {e})") from e
    if not 0 <= idx < 5:
        raise MMRAGError(f"{where}: answer_idx {idx} is not 0-4")
    return q


def load_tvqa_long(path: str | Path) -> list[TVQAEpisode]:
    """Episodes of `tvqa_val_edited.json` (show → season → episode → clips, questions), in file order.

    Raises:
        MMRAGError: The file is unreadable or not in this layout (the message names the entry).
    """
    data = _read_json(Path(path), "TVQA-long questions")
    if not isinstance(data, dict):
        raise MMRAGError(f"{path}: expected an object show → season → episode, got {type(data).__name__}")
    out = []
    for show, seasons in data.items():
        for season, episodes in (seasons or {}).items():
            for episode, body in (episodes or {}).items():
                where = f"{path}: {show}/{season}/{episode}"
                if not isinstance(body, dict) or "questions" not in body:
                    raise MMRAGError(f"{where}: expected {{'clips': [...], 'questions': [...]}}")
                qs = [_question(q, f"{where} question {i}") for i, q in enumerate(body["questions"])]
                clips = sorted({str(c) for c in body.get("clips") or []} | {q.vid_name for q in qs})
                out.append(TVQAEpisode(str(show), str(season), str(episode), clips, qs))
    return out


def load_tvqa_subtitles(path: str | Path) -> dict[str, list[tuple[float, float, str]]]:
    """`vid_name → [(start, end, text)]` from `tvqa_preprocessed_subtitles.json`."""
    data = _read_json(Path(path), "TVQA subtitles")
    if not isinstance(data, list):
        raise MMRAGError(f"{path}: expected a list of {{vid_name, sub}}")
    out: dict[str, list[tuple[float, float, str]]] = {}
    for i, row in enumerate(data):
        try:
            out[str(row["vid_name"])] = [
                (float(s["start"]), float(s["end"]), " ".join(str(s["text"]).split())) for s in row["sub"]
            ]
        except (KeyError, TypeError, ValueError) as e:
            raise MMRAGError(f"{path}: entry {i}: bad subtitles ({type(e).__name__}: {e})") from e
    return out


def _lookup(table: dict[str, Any], vid: str) -> Any:
    """A clip's entry under its own name or with/without a show prefix."""
    if vid in table:
        return table[vid]
    for p in PREFIXES:
        if f"{p}_{vid}" in table:
            return table[f"{p}_{vid}"]
        if vid.startswith(p + "_") and vid[len(p) + 1 :] in table:
            return table[vid[len(p) + 1 :]]
    return None


def frame_folder(frames_root: Path | None, vid: str) -> Path | None:
    """The clip's folder of frames: `<root>/<vid>` or `<root>/<show>_frames/<vid>`.

    Only The Big Bang Theory's names go with or without their `bbt_` prefix; the other shows' always
    carry theirs.
    """
    if frames_root is None:
        return None
    names = [vid]
    if vid.startswith("bbt_"):
        names.append(vid[4:])
    elif not any(vid.startswith(p + "_") for p in PREFIXES):
        names.append("bbt_" + vid)
    for name in names:
        for cand in [frames_root / name, *(frames_root / f"{p}_frames" / name for p in PREFIXES)]:
            if cand.is_dir():
                return cand
    return None


def _frames(folder: Path | None) -> list[Path]:
    if folder is None:
        return []
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)


def episode_chunks(
    ep: TVQAEpisode,
    subtitles: dict[str, list[tuple[float, float, str]]],
    frames_root: Path | None = None,
    frames_per_clip: int = 4,
) -> Iterator[Chunk]:
    """One `video` chunk per clip, back to back on the episode's time line.

    Each chunk carries the clip's subtitles (shifted onto the episode's time line only in `t_start`;
    the text is the lines), up to `frames_per_clip` of its frames (evenly picked), and its frame
    folder and name in the payload (`frame_dir`, `vid_name`).
    """
    from PIL import Image

    offset = 0.0
    for vid in ep.clips:
        subs = _lookup(subtitles, vid) or []
        folder = frame_folder(frames_root, vid)
        files = _frames(folder)
        duration = len(files) / TVQA_FPS if files else max((e for _, e, _ in subs), default=0.0)
        duration = max(duration, 1.0)
        picks = (
            [files[int((i + 0.5) * len(files) / frames_per_clip)] for i in range(frames_per_clip)]
            if files
            else []
        )
        images = []
        for p in picks:
            with Image.open(p) as im:
                images.append(im.convert("RGB"))
        meta: dict[str, Any] = {"vid_name": vid, "episode": ep.key}
        if folder is not None:
            meta["frame_dir"] = str(folder)
        yield Chunk(
            modality="video",
            path=ep.key,
            locator=f"t={offset:.3f}-{offset + duration:.3f}",
            text="\n".join(t for _, _, t in subs) or None,
            images=images,
            t_start=offset,
            t_end=offset + duration,
            meta=meta,
        )
        offset += duration


def clip_spans(chunks: list[Chunk]) -> dict[str, tuple[float, float]]:
    """`vid_name → (t_start, t_end)` on the episode's time line."""
    return {str(c.meta["vid_name"]): (c.t_start or 0.0, c.t_end or 0.0) for c in chunks}


def content_hash(ep: TVQAEpisode, chunks: list[Chunk]) -> str:
    """A stable hash of what an episode's points hold (for point ids and the file table)."""
    blob = json.dumps([ep.key, [(c.locator, c.text, c.meta.get("frame_dir")) for c in chunks]])
    return hashlib.sha256(blob.encode()).hexdigest()


def index_episode(pipe: Pipeline, ep: TVQAEpisode, chunks: list[Chunk]) -> int:
    """Write an episode's clip points (skipped when the file table holds the same content); points written."""
    from mmrag.encoders.embedders import embed_chunks

    digest = content_hash(ep, chunks)
    old = pipe.files.get(ep.key)
    if old is not None and old.hash == digest:
        return 0
    pipe.store.delete_by_path(ep.key)
    for i in range(0, len(chunks), 32):
        pipe.store.upsert(embed_chunks(chunks[i : i + 32], digest, pipe.embedders))
    pipe.store.flush()
    pipe.files.put_many([(ep.key, digest, 0, len(chunks))])
    return len(chunks)


def tvqa_items(
    cfg: EvalConfig, make_pipeline: Callable[[EvalConfig, Path], Pipeline]
) -> tuple[list[Item], Pipeline, float, dict[str, Any]]:
    """Index the chosen episodes (once, cached under `runs/long-video/tvqa-index/`); list their questions."""
    from mmrag.evals.long_video_config import Item

    if not cfg.tvqa_subtitles:
        raise MMRAGError(
            "TVQA-long needs the subtitles file too: --tvqa-subtitles tvqa_preprocessed_subtitles.json"
        )
    episodes = load_tvqa_long(cfg.tvqa or "")[: cfg.episodes or None]
    subtitles = load_tvqa_subtitles(cfg.tvqa_subtitles)
    frames_root = Path(cfg.tvqa_frames) if cfg.tvqa_frames else None
    if frames_root is not None and not frames_root.is_dir():
        raise MMRAGError(f"{frames_root}: frames folder not found")
    from mmrag.evals._index import code_version

    parts = [cfg.tvqa, cfg.tvqa_subtitles, cfg.tvqa_frames, code_version()]
    key = hashlib.sha1(json.dumps(parts).encode()).hexdigest()[:12]
    pipe = make_pipeline(cfg, Path(cfg.runs) / "long-video" / "tvqa-index" / key)
    t0 = time.perf_counter()
    items: list[Item] = []
    written = 0
    _ = pipe.store  # opens the store (creating the folder) before the manifest is written
    pipe.save()
    for ep in episodes:
        chunks = list(episode_chunks(ep, subtitles, frames_root))
        spans = clip_spans(chunks)
        written += index_episode(pipe, ep, chunks)
        for i, q in enumerate(ep.questions):
            span = spans[q.vid_name]
            items.append(Item(q.qid or f"{ep.key}#{i}", "tvqa", q.q, q.choices, q.answer_idx, ep.key, span))
    if written:
        pipe.store.optimize()
    pipe.save()
    if cfg.questions and cfg.questions < len(items):
        items = random.Random(cfg.seed).sample(items, cfg.questions)
    facts = {"episodes": len(episodes), "frames": frames_root is not None, "tvqa": cfg.tvqa}
    return items, pipe, time.perf_counter() - t0, facts


__all__ = [
    "index_episode",
    "tvqa_items",
    "TVQAEpisode",
    "TVQAQuestion",
    "clip_spans",
    "content_hash",
    "episode_chunks",
    "frame_folder",
    "load_tvqa_long",
    "load_tvqa_subtitles",
]
