"""The daily loop as a user feels it: whole `mmrag` processes, timed from start to exit.

Timed, each `--repeats` times (median reported), the runs of one round interleaved so that a busy
machine slows every command alike:

- a Python baseline, `python -c "import numpy, typer, rich"` (what any Typer CLI pays);
- `mmrag --help`;
- a cold `mmrag search` and a cold `mmrag ask` (no server), the ask split into model load,
  retrieval, first token (wall time until its first byte on stdout) and generation;
- `mmrag search` and `mmrag ask` through a running `mmrag serve` on the same index;
- `mmrag index` of new files through that server, with the latency of searches sent meanwhile.

With `--before DIR` (a copy of the code without the change measured, e.g. `git archive HEAD | tar -x
-C DIR`), the cold commands also run from that tree in the same rounds, so each number has its before
beside it from one run. The index is MultiHop-RAG's articles (the first 200) in the offline profile.

    python bench/cli_latency.py --before /tmp/mmrag-before      # about 15 minutes on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multihop"
RESULTS = Path(__file__).parent / "results"
MMRAG = "import sys; sys.argv[0] = 'mmrag'; from mmrag.cli import main; main()"
QUERY = "Which company did the Justice Department accuse of paying for default search placement?"
QUESTION = "Who testified about the Google search deal with Apple?"
TOKENS = "48"
_TIMINGS = re.compile(r"retrieve ([\d.]+)s, load ([\d.]+)s, generate ([\d.]+)s")


def mmrag(tree: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "200", "NO_COLOR": "1"}
    return [sys.executable, "-c", MMRAG, *args], env


# `python -c` puts the working folder first on sys.path: run outside any checkout, so that PYTHONPATH
# alone decides which tree's `mmrag` a command imports.
OUTSIDE = tempfile.gettempdir()


def timed(cmd: list[str], env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900, cwd=OUTSIDE)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[3:])} failed: {out.stderr[-800:]}")
    return time.perf_counter() - t0


def timed_ask(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    """Wall time, time to the first byte on stdout (the first token), and the command's own split."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=OUTSIDE)
    assert proc.stdout is not None
    first = proc.stdout.read(1)
    t_first = time.perf_counter() - t0
    rest, err = proc.communicate(timeout=900)
    wall = time.perf_counter() - t0
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"ask failed: {err.decode()[-800:]}")
    m = _TIMINGS.search((first + rest).decode())
    if m is None:
        raise RuntimeError("ask printed no timings")
    retrieve, load, generate = map(float, m.groups())
    return {"wall": wall, "first_token": t_first, "load": load, "retrieve": retrieve, "generate": generate}


def summary(runs: list[Any]) -> dict[str, Any]:
    if runs and isinstance(runs[0], dict):
        return {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]} | {"runs": runs}
    return {"median_s": round(statistics.median(runs), 3), "runs": [round(r, 3) for r in runs]}


def build_index(work: Path) -> tuple[Path, int]:
    from mmrag import Pipeline

    lines = (DATA / "articles_facts.jsonl").read_text().splitlines()
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    (corpus / "articles.jsonl").write_text("\n".join(lines[:200]) + "\n")
    for i in range(0, len(lines) - 200, 5):  # new files for the index-while-serving runs
        (work / "new" / f"batch{i // 5:02d}").mkdir(parents=True, exist_ok=True)
        for j, line in enumerate(lines[200 + i : 205 + i]):
            (work / "new" / f"batch{i // 5:02d}" / f"article{j}.jsonl").write_text(line + "\n")
    with Pipeline.from_config(profile="offline", index=work / "idx", **{"encoders.ocr": False}) as p:
        p.index([corpus])
        return work / "idx", p.store.count()


def start_server(tree: Path, idx: Path) -> subprocess.Popen[bytes]:
    cmd, env = mmrag(tree, "serve", "--index", str(idx), "--port", "0", "--max-new-tokens", TOKENS)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=OUTSIDE)
    deadline = time.monotonic() + 600
    while not (idx / "server.json").exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"mmrag serve did not start: {proc.stderr.read().decode()[-800:]}")  # type: ignore[union-attr]
        time.sleep(0.2)
    return proc


def index_while_searching(tree: Path, idx: Path, batch: Path) -> dict[str, Any]:
    """`mmrag index batch/` through the server, with searches sent to the server meanwhile."""
    from mmrag.cli.remote import server_for

    remote = server_for(idx, local=False)
    assert remote is not None
    latencies: list[float] = []
    done = threading.Event()

    def search() -> None:
        while not done.is_set():
            t0 = time.perf_counter()
            remote.retrieve(QUERY, 5, {})
            latencies.append(time.perf_counter() - t0)

    thread = threading.Thread(target=search)
    thread.start()
    try:
        wall = timed(*mmrag(tree, "index", str(batch), "--index", str(idx), "--no-progress"))
    finally:
        done.set()
        thread.join()
    found = remote.retrieve(QUERY, 10, {"path": f"{batch}/*"})  # any hit: the new files are searchable
    searchable = any(h.path.startswith(str(batch)) for h in found.hits)
    return {"wall": wall, "searches": len(latencies), "search_max": max(latencies, default=0.0)} | {
        "searchable_on_return": float(searchable),
        "search_p95": sorted(latencies)[int(0.95 * (len(latencies) - 1))] if latencies else 0.0,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--before", type=Path, help="a tree of the code before, timed in the same rounds")
    ap.add_argument("--work", type=Path, default=None, help="work folder (default: a temporary one)")
    ap.add_argument("--out", type=Path, default=RESULTS / "cli_latency.json")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="mmrag-cli-latency-"))
    idx, points = build_index(work)
    trees = {"after": ROOT} | ({"before": args.before.resolve()} if args.before else {})
    for name, tree in trees.items():  # each tree's commands import that tree's code
        probe = [sys.executable, "-c", "import mmrag; print(mmrag.__file__)"]
        env = mmrag(tree)[1]
        where = subprocess.run(probe, env=env, capture_output=True, text=True, cwd=OUTSIDE).stdout
        assert where.startswith(str(tree)), (name, where)
    runs: dict[str, dict[str, list[Any]]] = {t: {} for t in trees}
    base: list[float] = []
    for r in range(args.repeats):  # one round: every cold command once, interleaved
        base.append(timed([sys.executable, "-c", "import numpy, typer, rich"]))
        for name, tree in trees.items():
            runs[name].setdefault("help", []).append(timed(*mmrag(tree, "--help")))
            search = mmrag(tree, "search", QUERY, "--index", str(idx), "-k", "5")
            runs[name].setdefault("search_cold", []).append(timed(*search))
            ask = mmrag(tree, "ask", QUESTION, "--index", str(idx), "-k", "3", "--max-new-tokens", TOKENS)
            runs[name].setdefault("ask_cold", []).append(timed_ask(*ask))
        print(f"round {r + 1}/{args.repeats} done", file=sys.stderr)
    server = start_server(ROOT, idx)
    try:
        after = runs["after"]
        batches = sorted((work / "new").iterdir())
        for r in range(args.repeats):
            base.append(timed([sys.executable, "-c", "import numpy, typer, rich"]))
            after.setdefault("search_server", []).append(
                timed(*mmrag(ROOT, "search", QUERY, "--index", str(idx), "-k", "5"))
            )
            after.setdefault("ask_server", []).append(
                timed_ask(*mmrag(ROOT, "ask", QUESTION, "--index", str(idx), "-k", "3"))
            )
            after.setdefault("index_server", []).append(index_while_searching(ROOT, idx, batches[r]))
    finally:
        server.terminate()
        server.wait(60)
    baseline = statistics.median(base)
    result: dict[str, Any] = {
        "bench": "cli_latency",
        "machine": machine(),
        "index": {"corpus": "MultiHop-RAG articles_facts.jsonl, first 200 articles", "points": points},
        "profile": "offline",
        "repeats": args.repeats,
        "query": QUERY,
        "question": QUESTION,
        "max_new_tokens": int(TOKENS),
        "python_baseline": summary(base),
        "note": "whole processes; medians of interleaved rounds; cold = no server (page cache warm); "
        "ask times: wall and first token measured from outside, load/retrieve/generate as the command "
        "prints them; index_server: `mmrag index` of 5 new article files through the server while a "
        "thread searched through it",
    }
    for name, timings in runs.items():
        result[name] = {k: summary(v) for k, v in timings.items()}
        result[name]["ratio_to_baseline"] = {
            k: round((s.get("median_s") or s.get("wall", 0.0)) / baseline, 2) for k, s in result[name].items()
        }
    write_json(result, args.out)
    print(json.dumps({n: result[n]["ratio_to_baseline"] for n in runs}, indent=2))


if __name__ == "__main__":
    main()
