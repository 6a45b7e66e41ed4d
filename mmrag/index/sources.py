"""What `mmrag index --ray` indexes: local files and fsspec URLs, listed on the driver with a stamp.

A `Source` is one file to index: its key (the absolute path, or the URL of an object in a bucket,
as the file table and the points' payloads name it), its size, and its *stamp*: a digest of what the
listing says of the file and its sidecars (sizes, modification times, inodes, etags). The driver
compares the stamp with the one the file table recorded and skips an unchanged file without
reading a byte of it; a file without a usable stamp is hashed, as `mmrag index` always does.

Folders in buckets are filtered by the rules of a local walk (`mmrag.ingest.discover`): hidden
entries, subtitles, captions and `.meta.json` files beside the file they belong to are left out, and
those sidecars travel with their file. A read task copies an object and its sidecars into a scratch
folder under their own names (`fetch`), so the file hashes and reads exactly as a local copy would.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.ingest.discover import (
    IMAGE_EXTS,
    indexed_ext,
    read_with_another,
    sidecar_names,
    sidecars,
)
from mmrag.types import FileError, MMRAGError

# Listing fields that change when an object's content does, by store: etags and generations
# (S3, GCS, Azure), modification times (local, HTTP, most others), inodes (local).
_CHANGE_KEYS = ("ETag", "etag", "md5Hash", "generation", "version_id", "mtime", "LastModified",
                "last_modified", "updated", "created", "ino")  # fmt: skip
RAY_EXTRA = "pip install 'mmrag[ray]'"


@dataclass(frozen=True)
class Source:
    """One file to index, as listed on the driver.

    Attributes:
        key: The absolute path of a local file, or the URL of an object (`s3://bucket/a.jpg`).
        size: Bytes of the file itself.
        stamp: Digest of the listing of the file and its sidecars; None when the listing has no
            field that changes with the content (the file is then hashed on every run).
        sidecars: URLs of an object's sidecars (a local file's are found beside it).
    """

    key: str
    size: int
    stamp: str | None
    sidecars: tuple[str, ...] = ()

    @property
    def remote(self) -> bool:
        return is_url(self.key)


def is_url(path: str | os.PathLike[str]) -> bool:
    """Whether a source is an fsspec URL (`s3://`, `gs://`, `file://`, `memory://`, ...)."""
    return "://" in str(path)


def stamp_of(parts: Sequence[tuple[str, dict[str, Any]]]) -> str | None:
    """The stamp of a file and its sidecars from (name, listing info) pairs; None when the file's
    own info has nothing that changes with its content."""
    if not parts or not any(k in parts[0][1] for k in _CHANGE_KEYS):
        return None
    rows = [
        [name, info.get("size"), *(_plain(info.get(k, "")) for k in _CHANGE_KEYS)] for name, info in parts
    ]
    return hashlib.blake2b(json.dumps(rows).encode(), digest_size=16).hexdigest()


def _plain(value: Any) -> str:
    """A listing value as text; a time the same whether a listing gives it as a number or a datetime."""
    stamp = getattr(value, "timestamp", None)
    return repr(float(stamp())) if callable(stamp) else str(value)


def local_info(path: Path) -> dict[str, Any]:
    """A local file's listing info, in the terms `stamp_of` reads."""
    st = path.stat()
    return {"size": st.st_size, "mtime": st.st_mtime_ns, "ino": st.st_ino}


def local_stamp(path: Path) -> str:
    """The stamp of a local file and the sidecars beside it."""
    stamp = stamp_of([(p.name, local_info(p)) for p in [path, *sidecars(path)]])
    assert stamp is not None  # local info always has an mtime
    return stamp


def local_sources(found: Sequence[Path]) -> tuple[list[Source], list[FileError]]:
    """The files `find_files` found as sources (stat'ed now: one that vanished is an error)."""
    out, errors = [], []
    for path in found:
        try:
            out.append(Source(str(path), path.stat().st_size, local_stamp(path)))
        except OSError as e:
            errors.append(FileError(str(path), f"cannot stat: {e.strerror or e}"))
    return out, errors


def filesystem(url: str) -> tuple[Any, str]:
    """The fsspec filesystem of a URL and the path inside it.

    Raises:
        MMRAGError: fsspec is not installed, or no filesystem serves the URL's protocol.
    """
    try:
        import fsspec
    except ImportError as e:
        raise MMRAGError(f"indexing a URL ({url}) needs fsspec: {RAY_EXTRA}") from e
    try:
        return fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # e.g. s3:// without s3fs installed
        raise MMRAGError(f"{url}: no fsspec filesystem for it ({e})") from e


def remote_sources(urls: Sequence[str]) -> tuple[list[Source], list[FileError]]:
    """The files under each URL (a folder is listed recursively; an object is taken as given)."""
    out: dict[str, Source] = {}
    errors: list[FileError] = []
    for url in urls:
        try:
            found = _list_url(url)
        except FileNotFoundError:
            errors.append(FileError(url, "no such file or folder"))
            continue
        except MMRAGError as e:
            errors.append(FileError(url, str(e)))
            continue
        out.update((s.key, s) for s in found)
    return list(out.values()), errors


def _list_url(url: str) -> list[Source]:
    fs, root = filesystem(url)
    root = root.rstrip("/") or "/"
    if fs.isdir(root):
        listing = fs.find(root, detail=True)
        stems = _image_stems(listing)
        wanted = [p for p in sorted(listing) if _indexable(p, root, listing, stems)]
    elif fs.isfile(root):
        ext = posixpath.splitext(root)[1]
        if not indexed_ext(root):  # subtitles (.srt, .vtt) are read with their video, not alone
            raise MMRAGError(f"unsupported file type {ext or '(no extension)'!r}")
        listing = {i["name"]: i for i in fs.ls(posixpath.dirname(root), detail=True)}
        listing.setdefault(root, fs.info(root))
        wanted = [root]
    else:
        raise FileNotFoundError(url)

    def listed(folder: str) -> Any:
        return lambda name: posixpath.join(folder, name) in listing

    out = []
    for path in wanted:
        folder, name = posixpath.split(path)
        side = [posixpath.join(folder, n) for n in sidecar_names(name, listed(folder))]
        parts = [(posixpath.basename(p), listing[p]) for p in [path, *side]]
        size = int(listing[path].get("size") or 0)
        sidecar_urls = tuple(fs.unstrip_protocol(p) for p in side)
        out.append(Source(fs.unstrip_protocol(path), size, stamp_of(parts), sidecar_urls))
    return out


def _indexable(path: str, root: str, listing: dict[str, Any], stems: dict[str, set[str]]) -> bool:
    """What a local walk would index among a bucket's objects (hidden entries, sidecars left out);
    `stems` holds the image stems of each folder (what makes a `.txt` beside one a caption)."""
    if listing[path].get("type", "file") != "file":
        return False
    if any(part.startswith(".") for part in posixpath.relpath(path, root).split("/")):
        return False
    folder, name = posixpath.split(path)
    if not indexed_ext(name):  # nor subtitles: read with their video
        return False
    return not read_with_another(
        name, stems.get(folder, set()), lambda n: posixpath.join(folder, n) in listing
    )


def _image_stems(listing: dict[str, Any]) -> dict[str, set[str]]:
    """Folder -> stems of the images in it."""
    out: dict[str, set[str]] = {}
    for path in listing:
        folder, name = posixpath.split(path)
        stem, ext = posixpath.splitext(name)
        if ext.lower() in IMAGE_EXTS:
            out.setdefault(folder, set()).add(stem)
    return out


@contextlib.contextmanager
def fetch(source: Source) -> Iterator[tuple[Path, int]]:
    """A local copy of an object and its sidecars under their own names, in a scratch folder that is
    removed afterwards; with the bytes copied.

    The file table records the stamp of the listing, taken before the copy: the content read is at
    least as new as that stamp, so a later change always shows as another stamp.
    """
    scratch = Path(tempfile.mkdtemp(prefix="mmrag-fetch-"))
    try:
        copied = 0
        for url in (source.key, *source.sidecars):
            fs, path = filesystem(url)
            local = scratch / posixpath.basename(path)
            fs.get_file(path, str(local))
            copied += local.stat().st_size
        yield scratch / posixpath.basename(filesystem(source.key)[1]), copied
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
