"""What the server may open, and how it names files to clients.

A file is opened for a request (a video, an audio file, a thumbnail, a page render) only when

1. the index's file table records it,
2. its real location (links resolved) lies inside one of the roots that indexing was asked for, and
3. its identity (device, inode, size, modification time) is the one recorded when it was hashed.

A file swapped after indexing, for a link to `/etc/passwd` or for other bytes, fails 2 or 3 and is
answered with 404. Tables written before identities were recorded fall back to the size, and to the
folders of the recorded files as roots.

Clients never see an absolute path: a file is named by its root's folder name and the path below it
(`corpus/clips/cooking.mp4`), and error messages have absolute paths cut down the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from mmrag.ingest.discover import inside

_ABS_PATH = re.compile(r"(?<![\w.~-])/(?:[^\s'\"()\[\]:;,]+/)+[^\s'\"()\[\]:;,]*")


class ServedFiles:
    """The indexed files a server may open, from the file table's rows and roots.

    Args:
        records: The file table's rows (`FileTable.all()`).
        roots: The real paths indexing was asked for (`FileTable.roots()`).
        index_dir: The index folder (named by its folder name only).
    """

    def __init__(self, records: Iterable[Any], roots: Iterable[str], index_dir: Path | None = None) -> None:
        self.records = {r.path: r for r in records}
        self.by_hash = {r.hash: r.path for r in self.records.values()}
        self.roots = sorted(set(roots), key=len, reverse=True)
        if not self.roots:  # an index from before roots were recorded
            dirs = {os.path.realpath(os.path.dirname(p)) for p in self.records}
            self.roots = sorted(dirs, key=len, reverse=True)
        self.index_dir = str(index_dir) if index_dir is not None else None

    def __contains__(self, path: object) -> bool:
        return path in self.records

    def servable(self, path: str) -> Path | None:
        """The real path of an indexed file that is still the file that was indexed; None otherwise."""
        rec = self.records.get(path)
        if rec is None:
            return None
        real = os.path.realpath(path)
        if not any(inside(real, r) for r in self.roots):
            return None
        try:
            st = os.stat(real)
        except OSError:
            return None
        if not os.path.isfile(real) or st.st_size != rec.size:
            return None
        if getattr(rec, "ino", None) is not None and (st.st_dev, st.st_ino, st.st_mtime_ns) != (
            rec.dev,
            rec.ino,
            rec.mtime_ns,
        ):
            return None
        return Path(real)

    def public(self, path: str) -> str:
        """A path as clients see it: relative to its root, under the root's folder name."""
        for root in self.roots:
            for candidate in (path, os.path.realpath(path)):
                if inside(candidate, root):
                    rel = os.path.relpath(candidate, root)
                    base = os.path.basename(root.rstrip(os.sep)) or root
                    return base if rel == "." else f"{base}/{rel}"
        if self.index_dir and inside(path, self.index_dir):
            rel = os.path.relpath(path, self.index_dir)
            name = os.path.basename(self.index_dir.rstrip(os.sep))
            return name if rel == "." else f"{name}/{rel}"
        return os.path.basename(path.rstrip(os.sep)) or path

    def scrub(self, text: str) -> str:
        """`text` with every absolute path in it cut down to its public form."""
        return _ABS_PATH.sub(lambda m: self.public(m.group(0)), text)

    def public_json(self, obj: Any) -> Any:
        """A JSON value with every string that is an absolute path in its public form."""
        if isinstance(obj, dict):
            return {k: self.public_json(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [self.public_json(v) for v in obj]
        if isinstance(obj, str) and obj.startswith("/") and "\n" not in obj and len(obj) > 1:
            return self.public(obj)
        return obj


__all__ = ["ServedFiles"]
