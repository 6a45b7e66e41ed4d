"""Find the files to index: walk folders, sort out kinds by extension, hash contents.

Folders are walked depth first with entries sorted by name, so the same tree always gives the
same list. Hidden entries (a leading dot) are skipped inside folders; a path named explicitly is
taken as given.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mmrag.types import FileError

if TYPE_CHECKING:
    from mmrag.config import IngestConfig

Kind = Literal["image", "pdf", "video", "text", "audio"]

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
VIDEO_EXTS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp", ".ogv"}
)
AUDIO_EXTS = frozenset({".wav", ".mp3", ".m4a", ".flac", ".ogg", ".opus", ".oga", ".aac", ".wma"})
PDF_EXTS = frozenset({".pdf"})
TEXT_EXTS = frozenset({".txt", ".md", ".markdown", ".json", ".jsonl", ".ndjson"})
SUBTITLE_EXTS = frozenset({".srt", ".vtt"})

_INDEXED_EXTS = IMAGE_EXTS | VIDEO_EXTS | AUDIO_EXTS | PDF_EXTS | TEXT_EXTS
_HASH_BLOCK = 1 << 20


def kind_of(path: Path) -> Kind | None:
    """The reader a file goes to, from its extension (case-insensitive); None when unsupported.

    A `.gif` is a video when it has more than one frame (the header of the second frame is read to
    tell) and an image otherwise; other animated formats (WebP, APNG) are images, read at their
    first frame. A GIF that cannot be opened counts as an image, whose reader reports the problem.
    """
    ext = Path(path).suffix.lower()
    if ext == ".gif":
        return "video" if _is_animated_gif(Path(path)) else "image"
    if ext in IMAGE_EXTS:
        return "image"
    if ext in VIDEO_EXTS:
        return "video"
    if ext in AUDIO_EXTS:
        return "audio"
    if ext in PDF_EXTS:
        return "pdf"
    if ext in TEXT_EXTS:
        return "text"
    return None


def _is_animated_gif(path: Path) -> bool:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return bool(getattr(im, "is_animated", False))
    except Exception:  # any unreadable GIF: let the image reader name the problem
        return False


def sidecars(path: Path) -> list[Path]:
    """Files read together with `path`: a video's `<stem>.srt`/`.vtt`, an image's `<stem>.txt` caption,
    any file's `<file>.meta.json` metadata."""
    path = Path(path)
    return [path.with_name(n) for n in sidecar_names(path.name, lambda n: path.with_name(n).is_file())]


def sidecar_names(name: str, exists: Callable[[str], bool]) -> list[str]:
    """The names of a file's sidecars (`sidecars`), given which names are files in its folder.

    Also what a listing of a bucket (fsspec) uses, where `exists` looks the name up in the listing.
    """
    from mmrag.ingest.subtitles import SUBTITLE_SUFFIXES

    stem, ext = os.path.splitext(name)
    ext = ext.lower()
    found: list[str | None] = []
    if ext in VIDEO_EXTS or ext == ".gif":
        found.append(next((stem + s for s in SUBTITLE_SUFFIXES if exists(stem + s)), None))
    if ext in IMAGE_EXTS:
        found.append(stem + ".txt" if exists(stem + ".txt") else None)
    meta = name + ".meta.json"
    found.append(meta if exists(meta) else None)
    return [n for n in found if n is not None]


def read_with_another(name: str, image_stems: set[str], exists: Callable[[str], bool]) -> bool:
    """Whether a file in a folder is a sidecar read with another file, never indexed alone: an image's
    `<stem>.txt` caption (`image_stems`: the stems of the folder's images), or `<file>.meta.json`."""
    stem, ext = os.path.splitext(name)
    if ext.lower() == ".txt" and stem in image_stems:
        return True
    return name.endswith(".meta.json") and exists(name[: -len(".meta.json")])


def indexed_ext(name: str) -> bool:
    """Whether a file name has an extension that some reader takes (by name only: GIFs not opened)."""
    return os.path.splitext(name)[1].lower() in _INDEXED_EXTS


def file_hash(path: Path, with_sidecars: bool = True) -> str:
    """Content hash (BLAKE2b, 128-bit, hex) of a file and its sidecars, read in 1 MiB blocks.

    The sidecars (`sidecars`) are part of the hash so that editing a video's subtitles or an
    image's caption makes the file count as changed; a file without sidecars (or with
    `with_sidecars=False`: what keys a video's transcript) hashes to the plain BLAKE2b of its bytes.

    Raises:
        OSError: the file cannot be read.
    """
    h = hashlib.blake2b(digest_size=16)
    for i, part in enumerate([Path(path), *(sidecars(Path(path)) if with_sidecars else [])]):
        if i:
            h.update(b"\0sidecar" + part.suffix.lower().encode() + b"\0")
        with open(part, "rb") as f:
            while block := f.read(_HASH_BLOCK):
                h.update(block)
    return h.hexdigest()


@dataclass
class Found:
    """What `find_files` found: the files to index, the paths that could not be used, the links left
    out, and the roots (real paths) the files lie in."""

    files: list[Path] = field(default_factory=list)
    errors: list[FileError] = field(default_factory=list)
    skipped: list[FileError] = field(default_factory=list)
    """Symbolic links that lead outside the folder being indexed (without `follow_symlinks`)."""
    roots: list[str] = field(default_factory=list)
    """Real paths of the folders and files given, and of link targets followed outside them."""


def discover(paths: Sequence[str | Path], cfg: IngestConfig) -> tuple[list[Path], list[FileError]]:
    """The files to index and the paths that could not be used (`find_files`, without the rest)."""
    found = find_files(paths, cfg)
    return found.files, found.errors


def find_files(paths: Sequence[str | Path], cfg: IngestConfig) -> Found:
    """Expand files and folders into the sorted list of files to index.

    Folders are walked recursively; inside them, unsupported extensions, hidden entries, subtitle
    sidecars (read with their video) and `<stem>.txt` captions beside an image of the same stem are
    left out without a word. A symbolic link inside a folder that leads outside it (to a file or a
    folder) is left out with a notice (`Found.skipped`) unless `cfg.follow_symlinks`; links to folders
    are walked only with `cfg.follow_symlinks`, and a link that leads back into its own ancestry is
    reported as a loop. A file named explicitly must have a supported extension.

    Args:
        paths: Files and folders, in the order they should be indexed.
        cfg: Ingest settings (`follow_symlinks`).

    Returns:
        Absolute file paths without duplicates, the paths that could not be used with the reason,
        the links left out, and the roots.
    """
    found = Found()
    files, errors = found.files, found.errors
    seen: set[Path] = set()

    def add(p: Path) -> None:
        if p in seen:
            return
        seen.add(p)
        if not _utf8_name(p):
            # the path is stored (payload, file table) and printed as text: it must round-trip
            errors.append(FileError(shown(p), "file name is not valid UTF-8; rename the file"))
        else:
            files.append(p)

    for raw in paths:
        p = Path(os.path.abspath(Path(raw).expanduser()))
        if p.is_symlink() and not p.exists():
            errors.append(FileError(shown(p), _dead_link(p)))
        elif not p.exists():
            errors.append(FileError(shown(p), "no such file or folder"))
        elif p.is_dir():
            found.roots.append(os.path.realpath(p))
            _walk(p, cfg, add, found)
        elif not p.is_file():
            errors.append(FileError(shown(p), "not a regular file or folder"))
        elif p.suffix.lower() in SUBTITLE_EXTS:
            errors.append(FileError(shown(p), "subtitles are read with the video of the same name"))
        elif kind_of(p) is None:
            errors.append(FileError(shown(p), f"unsupported file type {p.suffix or '(no extension)'!r}"))
        elif not os.access(p, os.R_OK):
            errors.append(FileError(shown(p), "permission denied"))
        else:
            found.roots.append(os.path.realpath(p))
            add(p)
    found.roots = list(dict.fromkeys(found.roots))
    return found


def inside(real: str, root: str) -> bool:
    """Whether the real path `real` is `root` or lies below it."""
    return real == root or real.startswith(root.rstrip(os.sep) + os.sep)


def _utf8_name(path: Path) -> bool:
    try:
        os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def shown(path: Path | str) -> str:
    """A path as printable text: bytes that are not UTF-8 (surrogate escapes) become `\\xNN`."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _outside(real: str, top: str, is_dir: bool) -> str:
    what = "folder" if is_dir else "file"
    return (
        f"symbolic link to a {what} outside {shown(top)} ({shown(real)}); "
        "left out: pass --follow-symlinks to index it"
    )


def _dead_link(path: Path) -> str:
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return "symbolic link loop"
    return "broken symbolic link"


def _walk(root: Path, cfg: IngestConfig, add: Callable[[Path], None], found: Found) -> None:
    """Depth-first walk with sorted entries; tracks real folder paths to stop at symlink loops."""
    errors = found.errors
    top = os.path.realpath(root)
    visited: set[str] = {top}
    # (folder, real paths of its ancestors including itself): a link back into the chain is a loop
    stack: list[tuple[Path, tuple[str, ...]]] = [(root, (os.path.realpath(root),))]
    while stack:
        folder, chain = stack.pop()
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as e:
            errors.append(FileError(shown(folder), f"cannot list folder: {e.strerror or e}"))
            continue
        stems = {
            stem
            for stem, ext in map(os.path.splitext, (e.name for e in entries))
            if ext.lower() in IMAGE_EXTS
        }
        subfolders: list[tuple[Path, tuple[str, ...]]] = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            path = folder / entry.name
            try:
                is_dir = entry.is_dir()  # follows links; False for broken ones
                is_link = entry.is_symlink()
            except OSError as e:
                loop = e.errno == errno.ELOOP
                errors.append(
                    FileError(
                        shown(path), "symbolic link loop" if loop else f"cannot stat: {e.strerror or e}"
                    )
                )
                continue
            real = os.path.realpath(path) if is_link else ""
            if is_link and real and not inside(real, top) and os.path.exists(real):
                if not cfg.follow_symlinks:
                    found.skipped.append(FileError(shown(path), _outside(real, top, is_dir)))
                    continue
                found.roots.append(real)  # followed on purpose: what it leads to may be served
            if is_dir:
                if is_link and not cfg.follow_symlinks:
                    continue
                real = os.path.realpath(path)
                if real in chain:
                    errors.append(FileError(shown(path), f"symbolic link loop (back to {real})"))
                elif real not in visited:  # the same folder reached twice through links: walk it once
                    visited.add(real)
                    subfolders.append((path, (*chain, real)))
                continue
            if is_link and not path.exists():
                errors.append(FileError(shown(path), _dead_link(path)))
                continue
            if read_with_another(entry.name, stems, lambda n, d=folder: os.path.exists(d / n)):  # type: ignore[misc]
                continue  # an image's caption or a file's metadata (mmrag/ingest/meta.py): read with it
            if not indexed_ext(entry.name):
                continue
            if not entry.is_file():
                # a named pipe or device with a file's extension: opening it could block forever
                errors.append(FileError(shown(path), "not a regular file"))
                continue
            if not os.access(path, os.R_OK):
                errors.append(FileError(shown(path), "permission denied"))
                continue
            add(path)
        # reversed onto the stack so that subfolders come out in name order
        stack.extend(reversed(subfolders))
