"""The command line as a client of the `mmrag serve` that holds an index.

When an index folder has a live server (`mmrag.serve.presence`), `mmrag search`, `ask`, `info` and
`index` send their work to it, with its token, instead of opening the index (which its lock would
refuse): the models stay loaded in the server and the index can grow while it serves. `--local`
opens the index in-process regardless. A server that does not answer (its file outlived it) makes
the command run in-process.

The results are rebuilt as the same objects the in-process path returns (`Retrieval`, `Answer`,
the report), with the server's public paths (relative to the indexed roots) turned back into this
machine's paths, so every command prints the same thing either way. Plain `http.client`: a search
through the server imports no model library and no HTTP package.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mmrag.serve.presence import ServerFile, live_server
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.answer.ask import Answer
    from mmrag.retrieve.hybrid import Retrieval


class ServerGone(Exception):
    """The server named by the index's server file does not answer: run in-process."""


def server_for(index: Path, local: bool) -> Remote | None:
    """A client of the live server holding `index`, or None (`local`, no server, a stale file)."""
    if local:
        return None
    index_dir = index.expanduser().resolve()
    info = live_server(index_dir)
    return Remote(info, index_dir) if info is not None else None


class Remote:
    """A client of one server over one index folder.

    Args:
        info: What the server wrote about itself (URL, token).
        index_dir: The index folder (its file table names the roots, to map paths back).
    """

    def __init__(self, info: ServerFile, index_dir: Path) -> None:
        url = urlsplit(info.url)
        self.url, self.token, self.index_dir = info.url, info.token, index_dir
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self._roots: list[str] | None = None

    # -- HTTP -------------------------------------------------------------------------------------------
    def _send(self, method: str, path: str, body: Any = None, timeout: float | None = 600) -> Any:
        import http.client  # here, not at import: `mmrag --help` and in-process commands never need it

        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        name = f"[{self.host}]" if ":" in self.host else self.host
        headers = {"Host": f"{name}:{self.port}"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, path, body=data, headers=headers)
            resp = conn.getresponse()
        except (ConnectionRefusedError, ConnectionResetError, FileNotFoundError) as e:
            raise ServerGone(str(e)) from e
        if resp.status >= 400:
            raw = resp.read()
            try:
                msg = json.loads(raw).get("error") or raw.decode(errors="replace")
            except ValueError:
                msg = raw.decode(errors="replace")[:200]
            raise MMRAGError(f"mmrag serve ({self.url}): {msg}")
        return resp

    def get_json(self, path: str) -> Any:
        return json.loads(self._send("GET", path).read())

    def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return json.loads(self._send("POST", path, body).read())

    def events(self, path: str, body: dict[str, Any]) -> Iterator[tuple[str, Any]]:
        """Server-Sent Events of a POST, as (event, data) pairs as they come."""
        resp = self._send("POST", path, body, timeout=None)
        event, data = "", list[str]()
        for raw in iter(resp.readline, b""):
            line = raw.decode("utf-8").rstrip("\r\n")
            if not line:
                if event:
                    yield event, json.loads("\n".join(data)) if data else None
                event, data = "", []
            elif line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].strip())

    # -- paths ------------------------------------------------------------------------------------------
    def roots(self) -> list[str]:
        """The indexed roots, read from the file table (read-only: the server holds it open)."""
        if self._roots is None:
            import sqlite3

            db_path = self.index_dir / "files.sqlite"
            try:
                db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
                try:
                    self._roots = [r for (r,) in db.execute("SELECT path FROM roots")]
                finally:
                    db.close()
            except sqlite3.Error:
                self._roots = []
            self._roots.sort(key=len, reverse=True)
        return self._roots

    def local_path(self, public: str) -> str:
        """A path as the server shows it (`corpus/clips/a.mp4`) as it is on this machine."""
        first, _, rest = public.partition("/")
        for fresh in (False, True):  # roots read again once: the server may have indexed a new one
            if fresh:
                self._roots = None
            for root in self.roots():
                if os.path.basename(root.rstrip(os.sep)) == first:
                    candidate = os.path.join(root, rest) if rest else root
                    if os.path.exists(candidate):
                        return candidate
        if first == self.index_dir.name:
            return str(self.index_dir / rest) if rest else str(self.index_dir)
        return public

    # -- the commands' work -----------------------------------------------------------------------------
    def retrieve(self, query: str, k: int, options: dict[str, Any]) -> Retrieval:
        """`Pipeline.retrieve` in the server."""
        from mmrag.retrieve.hybrid import Retrieval

        d = self.post_json("/api/retrieve", {"query": query, "k": k, **options})
        hits = [self._hit(h) for h in d["hits"]]
        for h in hits:
            if "path" in h.payload:
                h.payload["path"] = h.path
        keep = ("k", "candidates", "filters", "rerank", "hubness", "timings")
        return Retrieval(hits, **{key: d[key] for key in keep if key in d})

    def ask(
        self, question: str, k: int, options: dict[str, Any], on_token: Callable[[str], None] | None
    ) -> Answer:
        """`Pipeline.ask` in the server, its tokens passed to `on_token` as they come."""
        from mmrag.answer.ask import Answer, Source

        for event, data in self.events("/api/ask/stream", {"question": question, "k": k, **options}):
            if event == "token" and on_token is not None:
                on_token(data["text"])
            elif event == "error":
                raise MMRAGError(f"mmrag serve ({self.url}): {data.get('error')}")
            elif event == "done":
                srcs = [Source(s["label"], self._hit(s), bool(s.get("used_image"))) for s in data["sources"]]
                dropped = data.get("dropped") or []
                for drop in dropped:
                    if isinstance(drop.get("path"), str):
                        drop["path"] = self.local_path(drop["path"])
                timings, model = data.get("timings") or {}, data.get("model") or ""
                return Answer(data["question"], data["answer"], srcs, timings, model, dropped)
        raise MMRAGError(f"mmrag serve ({self.url}): the answer stream ended without an answer")

    def info(self) -> dict[str, Any]:
        """`Pipeline.info` and the documents, as `mmrag info` gathers them in-process."""
        data: dict[str, Any] = self.get_json("/api/info?documents=1")
        data["index"] = str(self.index_dir)
        for d in data.get("documents") or []:
            if isinstance(d.get("path"), str):
                d["path"] = self.local_path(d["path"])
        data.pop("serve", None)
        return data

    def index(
        self,
        paths: list[str],
        strict: bool,
        follow_symlinks: bool | None,
        progress: Callable[[str, Any], None],
    ) -> dict[str, Any]:
        """Index in the server; `progress(event, data)` sees `start` and each `file`. Returns the report."""
        body = {"paths": paths, "strict": strict, "follow_symlinks": follow_symlinks}
        for event, data in self.events("/api/index", body):
            if event in ("start", "file"):
                progress(event, data)
            elif event == "error":
                raise MMRAGError(f"mmrag serve ({self.url}): {data.get('error')}")
            elif event == "done":
                return dict(data)
        raise MMRAGError(f"mmrag serve ({self.url}): the index stream ended without a report")

    def _hit(self, d: dict[str, Any]) -> Any:
        from mmrag.types import Hit

        fields: dict[str, Any] = {f: d.get(f) for f in ("page", "t_start", "t_end", "text")}
        path = self.local_path(str(d.get("path") or ""))
        payload = dict(d.get("payload") or {})
        return Hit(str(d["id"]), float(d["score"]), str(d["modality"]), path, **fields, payload=payload)


__all__ = ["Remote", "ServerGone", "server_for"]
