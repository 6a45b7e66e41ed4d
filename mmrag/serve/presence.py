"""Where a running `mmrag serve` listens, written into the index folder it holds.

`mmrag serve` writes `server.json` (URL, pid, token) into the index folder once its socket listens,
and removes it when it stops. The other commands (`mmrag search`, `ask`, `info`, `index`) read it and
talk to that server instead of failing on the index lock: one resident process per index keeps the
models loaded, and the index can grow while it is served.

The file holds the token, so it is created readable and writable by its owner only (0600, never
wider whatever the umask), and a reader trusts it only when it is owned by the reader's own user and
not readable by anyone else. A file left behind by a server that was killed names a pid that is no
longer running: it is *stale*, removed by the next reader, and the command runs in-process.

>>> announce(Path("idx"), "http://127.0.0.1:8000", "tok...")  # doctest: +SKIP
>>> live_server(Path("idx")).url  # doctest: +SKIP
'http://127.0.0.1:8000'
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

SERVER_FILE = "server.json"


@dataclass(frozen=True)
class ServerFile:
    """What a running server wrote about itself."""

    url: str
    """Base URL a local client reaches it at (`http://127.0.0.1:8000`)."""
    pid: int
    token: str | None
    """The token every request carries; None for a server run with `--no-token`."""
    started_at: float = 0.0


def pid_alive(pid: int) -> bool:
    """True when a process with this id exists (signal 0 probes without sending anything)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def write_server_file(index_dir: Path, url: str, token: str | None, pid: int | None = None) -> Path:
    """Write `server.json` atomically with mode 0600; returns its path."""
    path = index_dir / SERVER_FILE
    info = ServerFile(url, os.getpid() if pid is None else pid, token, time.time())
    tmp = index_dir / f".{SERVER_FILE}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, json.dumps(asdict(info)).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return path


def remove_server_file(index_dir: Path, pid: int | None = None) -> None:
    """Remove `server.json` if it is this process's (or `pid`'s): a newer server's file stays."""
    path = index_dir / SERVER_FILE
    info = _read(path)
    if info is not None and info.pid == (os.getpid() if pid is None else pid):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def announce(index_dir: Path, url: str, token: str | None) -> Iterator[Path]:
    """`server.json` for the duration of the block (removed on exit, exceptions included)."""
    path = write_server_file(index_dir, url, token)
    try:
        yield path
    finally:
        remove_server_file(index_dir)


def _read(path: Path) -> ServerFile | None:
    try:
        st = path.stat()
        data = json.loads(path.read_text())
        if not isinstance(data, dict):
            return None
        if st.st_uid != os.getuid() or st.st_mode & 0o077:
            return None  # someone else's, or readable by others: not a file this user's server wrote
        token = data.get("token")
        return ServerFile(str(data["url"]), int(data["pid"]), token, float(data.get("started_at", 0)))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_server(index_dir: Path) -> ServerFile | None:
    """The server that holds `index_dir`, or None: no file, a file this user cannot trust, or a
    stale one (its pid is not running; the file is removed)."""
    path = index_dir / SERVER_FILE
    info = _read(path)
    if info is None:
        return None
    if not pid_alive(info.pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return info


__all__ = ["SERVER_FILE", "ServerFile", "announce", "live_server", "pid_alive", "write_server_file"]
