"""Options of the commands that serve or spread out: `mmrag serve` and `mmrag index --ray`, declared once.

The same rules as `mmrag.cli.options` (one spelling, type, help text and variable per flag); split
from it by command group to keep each module readable.
"""

from __future__ import annotations

from typing import Annotated

from mmrag.cli.options import _opt

# --- serve --------------------------------------------------------------------------------------------

HostOpt = Annotated[
    str, _opt("--host", text="Address to listen on (0.0.0.0: every interface).", envvar="MMRAG_HOST")
]
PortOpt = Annotated[int, _opt("--port", text="Port to listen on.", envvar="MMRAG_PORT")]
TokenOpt = Annotated[
    str | None,
    _opt(
        "--token",
        text="The token every request must carry (Bearer header, or the cookie the page sets after "
        "/?token=...); by default a random one, printed in the URL.",
        envvar="MMRAG_SERVE_TOKEN",
        panel="Server",
    ),
]
NoTokenOpt = Annotated[
    bool,
    _opt(
        "--no-token",
        text="Serve without a token: any program or user on this machine can read the index. "
        "Loopback only; refused with another --host.",
        panel="Server",
    ),
]
AllowHostOpt = Annotated[
    list[str] | None,
    _opt(
        "--allow-host",
        text="A further name the Host header may carry (repeatable): a reverse proxy's or LAN name. "
        "localhost, 127.0.0.1, [::1] and --host are always allowed; others get 403.",
        panel="Server",
    ),
]


WatchOpt = Annotated[
    bool,
    _opt(
        "--watch",
        text="Index new and changed files under the indexed folders as they appear, and drop deleted "
        "ones, within seconds (needs the watchfiles package: pip install 'mmrag[serve]').",
        panel="Server",
    ),
]

# --- scale-out: `mmrag index --ray` (docs/scale-out.md) -------------------------------------------------

_RAY = "Scale-out (--ray)"
RayOpt = Annotated[
    str | None,
    _opt(
        "--ray",
        text="Encode and ingest on Ray: 'local' starts a cluster here; 'auto', host:6379 or "
        "ray://host:10001 joins one (needs the ray extra: docs/scale-out.md).",
        envvar="MMRAG_RAY_ADDRESS",
        panel=_RAY,
    ),
]
EncodersOpt = Annotated[int | None, _opt("--encoders", text="Encoder actors.", min=1, panel=_RAY)]
GpusPerEncoderOpt = Annotated[
    float | None, _opt("--gpus-per-encoder", text="GPUs per encoder actor (0.5: two a GPU).", panel=_RAY)
]
WritersOpt = Annotated[
    int | None, _opt("--writers", text="Writer actors for a server (default: one a shard).", panel=_RAY)
]
BulkOpt = Annotated[
    bool, _opt("--bulk", text="New server collection: HNSW built after the load.", panel=_RAY)
]
