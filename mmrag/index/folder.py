"""The index folder: a manifest naming what built it, a file table for incremental indexing, a lock.

Layout of an index folder:

    idx/
      manifest.json   schema version, profile, encoders (ids, dims, revisions), store schema, config
      files.sqlite    one row per indexed file: path, content hash, points written
      store/          the embedded Qdrant shard (absent when a server holds the points)
      .lock           held while a process has the index open

The manifest is written to a temporary file and renamed, so a crash never leaves it half written.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import IndexLockedError, IndexMismatchError, MMRAGError

if TYPE_CHECKING:
    from mmrag.config import MMRAGConfig

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON to `path` through a temporary file, fsync, and rename over the old one."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_manifest(index_dir: Path) -> dict[str, Any] | None:
    """The manifest of an index folder, or None when the folder holds no index."""
    path = index_dir / MANIFEST
    if not path.exists():
        return None
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise MMRAGError(
            f"{path}: unreadable index manifest ({e}); rebuild the index into a new folder"
        ) from e
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise IndexMismatchError(
            f"{index_dir}: index schema version {version} is not supported by this mmrag "
            f"(schema {SCHEMA_VERSION}); rebuild it: mmrag index <paths> --index <new folder>"
        )
    return data


def check_encoders(index_dir: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> None:
    """Refuse to use an index with encoders other than the ones that built it, saying what differs."""
    diffs = []
    for space in sorted(set(recorded) | set(wanted)):
        r, w = recorded.get(space) or {}, wanted.get(space) or {}
        if r.get("id") != w.get("id"):
            diffs.append(f"{space} encoder: index has {r.get('id')!r}, asked for {w.get('id')!r}")
        elif r.get("dim") and w.get("dim") and r.get("dim") != w.get("dim"):
            diffs.append(f"{space} encoder {r.get('id')}: index dim {r.get('dim')}, model dim {w.get('dim')}")
    if diffs:
        raise IndexMismatchError(
            f"{index_dir} was built with other encoders: "
            + "; ".join(diffs)
            + ". Open it without overriding encoders (Pipeline.load / mmrag search --index), "
            "or index into a new folder."
        )


@dataclass
class FileRecord:
    path: str
    hash: str
    size: int
    points: int
    indexed_at: float
    mtime_ns: int | None = None
    """The file's identity when it was hashed (`os.stat`, links followed): what `mmrag serve` checks
    before it opens the file again. None in tables written before it was recorded."""
    dev: int | None = None
    ino: int | None = None
    stamp: str | None = None
    """What a listing said of the file and its sidecars when it was hashed (sizes, mtimes, etags;
    `mmrag.index.sources`): `mmrag index --ray` skips a file whose listing still says the same
    without reading it. None: recorded by a run that does not list (it hashes to tell)."""


_COLUMNS = "path, hash, size, points, indexed_at, mtime_ns, dev, ino, stamp"
_MARKS = ", ".join("?" * len(_COLUMNS.split(",")))


class FileTable:
    """Which files are fully indexed, by content hash (sqlite, one transaction per file), and the roots
    (folders and files) that indexing was asked for, by their real paths."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(str(path), timeout=30)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, hash TEXT NOT NULL, "
            "size INTEGER NOT NULL, points INTEGER NOT NULL, indexed_at REAL NOT NULL, "
            "mtime_ns INTEGER, dev INTEGER, ino INTEGER, stamp TEXT)"
        )
        have = {row[1] for row in self.db.execute("PRAGMA table_info(files)")}
        # a table from before identities (or listing stamps) were recorded
        for col, kind in (("mtime_ns", "INTEGER"), ("dev", "INTEGER"), ("ino", "INTEGER"), ("stamp", "TEXT")):
            if col not in have:
                self.db.execute(f"ALTER TABLE files ADD COLUMN {col} {kind}")
        self.db.execute("CREATE TABLE IF NOT EXISTS roots (path TEXT PRIMARY KEY)")
        self.db.commit()

    def get(self, path: str) -> FileRecord | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM files WHERE path=?", (path,)).fetchone()
        return FileRecord(*row) if row else None

    def put(self, path: str, hash_: str, size: int, points: int) -> None:
        self.put_many([(path, hash_, size, points)])

    def put_many(self, rows: list[tuple[Any, ...]]) -> None:
        """Record several files in one transaction: (path, hash, size, points), optionally followed by
        the identity (mtime_ns, dev, ino) the file had when it was hashed and its listing stamp."""
        now = time.time()
        full = [(*r[:4], now, *r[4:8], *[None] * (8 - len(r))) for r in rows]
        with self.db:
            self.db.executemany(f"INSERT OR REPLACE INTO files ({_COLUMNS}) VALUES ({_MARKS})", full)

    def delete(self, path: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM files WHERE path=?", (path,))

    def all(self) -> list[FileRecord]:
        return [FileRecord(*r) for r in self.db.execute(f"SELECT {_COLUMNS} FROM files")]

    def add_roots(self, roots: list[str]) -> None:
        """Remember folders and files given to indexing (real paths): `mmrag serve` opens only files
        whose real location lies inside one of them."""
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO roots VALUES (?)", [(r,) for r in roots])

    def roots(self) -> list[str]:
        return [r for (r,) in self.db.execute("SELECT path FROM roots ORDER BY path")]

    def close(self) -> None:
        self.db.close()


class IndexLock:
    """An exclusive, non-blocking lock on the index folder (fcntl.flock on `.lock`).

    The embedded engine allows one open shard per folder, so a second process gets a clear
    `IndexLockedError` instead of a corrupt read. The lock dies with its process (even on SIGKILL).
    """

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / ".lock"
        self.fd: int | None = None

    def acquire(self) -> None:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            other = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise IndexLockedError(
                f"index {self.path.parent} is locked by another process (pid {other}); "
                "wait for it to finish (one process at a time may open an embedded index)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            import fcntl

            with contextlib.suppress(OSError):
                fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None


def build_manifest(config: MMRAGConfig, encoders: dict[str, Any], old: dict[str, Any]) -> dict[str, Any]:
    """The manifest of an index built with `config` and `encoders` (Embedders.describe()).

    `old` is the previous manifest, whose `created_at` is kept.
    """
    now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    enc = {name: {**d, "revision": _revision(d["id"])} for name, d in encoders.items()}
    return {
        "schema_version": SCHEMA_VERSION,
        "mmrag_version": _version(),
        "profile": config.profile,
        "encoders": enc,
        "bm25": {"encoder": "qdrant_edge.Bm25", "language": "english", "modifier": "idf"},
        "store": {
            "backend": "edge" if config.store.url is None else "qdrant-server",
            "collection": config.store.collection,
            "dense": {s: d["dim"] for s, d in enc.items() if not d.get("multi")}
            | {f"{s}_mean": d["dim"] for s, d in enc.items() if d.get("multi")},
            "multi": {s: d["dim"] for s, d in enc.items() if d.get("multi")},
            "sparse": ["bm25"],
        },
        "config": config.to_dict(secrets=False),
        "created_at": old.get("created_at", now),
        "updated_at": now,
    }


def _revision(model_id: str) -> str | None:
    """Package version for packaged weights; None for hub models (their commit is not known offline)."""
    from importlib.metadata import PackageNotFoundError, version

    from mmrag.registry import get_model

    desc = get_model(model_id)
    if desc is None or desc.package is None:
        return None
    try:
        return f"{desc.package.replace('_', '-')}=={version(desc.package.replace('_', '-'))}"
    except PackageNotFoundError:
        return None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mmrag")
    except PackageNotFoundError:
        return "0+unknown"


def check_backend(index_dir: Path, manifest: dict[str, Any], url: str | None) -> None:
    """Refuse to open an embedded index on a server (or the reverse): it would look empty."""
    backend = manifest.get("store", {}).get("backend", "edge")
    if backend == "edge" and url is not None:
        raise IndexMismatchError(
            f"{index_dir}: this index keeps its points in the embedded engine, but a Qdrant URL is set "
            f"({url}); unset MMRAG_QDRANT_URL / --qdrant-url, or copy the index to the server with "
            f"`mmrag export --index {index_dir} --to {url} --out NEW_INDEX`"
        )
    if backend != "edge" and url is None:
        raise IndexMismatchError(
            f"{index_dir}: this index keeps its points on a Qdrant server; set MMRAG_QDRANT_URL "
            "(or --qdrant-url) to open it"
        )
