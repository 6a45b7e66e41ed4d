"""Crash safety: `mmrag index` killed with SIGKILL at random points, rerun, must equal a clean index.

Each trial runs the real command-line entry point (`mmrag.cli.main`) in its own process and kills
it with SIGKILL after a random delay (fixed seed) drawn from the duration of a clean run; then the
same command runs to completion on that index folder. Loading the models takes most of a cold
start here, so a driver process loads them once and forks one child per run: the children are
separate processes with their own pid, lock and store handles, killed exactly like a cold
`mmrag index` would be, only without paying the model load each time. Every fourth trial is killed
twice before it is completed.

After each trial the index must hold exactly the point ids of a clean run, no duplicates, every
point's `path`/`file_hash` equal to the file table's record, its vectors (dense per modality and
BM25) equal to the clean run's, and a readable manifest.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from mmrag.index.folder import FileTable, read_manifest
from mmrag.store.base import BM25, StoreSchema
from mmrag.store.edge import EdgeStore

TRIALS = 20
SEED = 20240611

DRIVER = textwrap.dedent(
    """
    import json, os, signal, sys, time
    import torch
    torch.set_num_threads(1)  # a forked child must not inherit a live OpenMP pool
    from PIL import Image
    from mmrag.cli import main
    from mmrag.config import MMRAGConfig
    from mmrag.encoders.embedders import Embedders

    # Load (and run once) the encoders that `mmrag index --profile offline` will ask for.
    emb = Embedders(MMRAGConfig.load(profile="offline").encoders)
    emb.text.encode_text(["warm up"])
    emb.image.encode_images([Image.new("RGB", (32, 32), "white")])
    emb.bm25.embed_documents(["warm up"])

    def run(argv, delay):
        t0 = time.perf_counter()
        pid = os.fork()
        if pid == 0:
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)  # stdout is the driver's reply channel
            sys.argv = ["mmrag", *argv]
            code = 0
            try:
                main()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            os._exit(code)
        if delay is not None:
            time.sleep(delay)
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        code = None if killed else os.waitstatus_to_exitcode(status)
        return {"killed": killed, "code": code, "seconds": time.perf_counter() - t0}

    for line in sys.stdin:
        job = json.loads(line)
        out = [run(job["argv"], d) for d in job["delays"]]
        print(json.dumps(out), flush=True)
    """
)


def _corpus(root: Path) -> Path:
    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(6):
        words = " ".join(f"w{i}x{j}" for j in range(300))  # two or three chunks per file
        (root / f"doc{i:02d}.txt").write_text(f"Document number {i}. {words}")
    for i in range(2):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / f"img{i}.png")
    return root


class _Driver:
    """The forking driver process: one JSON job per line in, one JSON result list per line out."""

    def __init__(self) -> None:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MMRAG_ENCODERS_OCR": "0"}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", DRIVER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
        )

    def run(self, argv: list[str], delays: list[float | None]) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "delays": delays}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the crash driver died"
        result: list[dict[str, Any]] = json.loads(line)
        return result

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


def _snapshot(idx: Path) -> dict[str, Any]:
    """Points (payload, vectors), file table and manifest of an index, read without any encoder."""
    manifest = read_manifest(idx)
    assert manifest is not None and manifest["schema_version"] >= 1
    files = FileTable(idx / "files.sqlite")
    try:
        table = {r.path: r for r in files.all()}
    finally:
        files.close()
    store = EdgeStore(idx / "store", StoreSchema(dict(manifest["store"]["dense"])))
    try:
        points = list(store.scroll(with_vectors=True))
        count = store.count()
    finally:
        store.close()
    return {"points": points, "count": count, "table": table, "dims": manifest["store"]["dense"]}


def _check(snap: dict[str, Any], clean: dict[str, Any], where: str) -> None:
    ids = [p["id"] for p in snap["points"]]
    assert len(ids) == len(set(ids)) == snap["count"], f"{where}: duplicate points"
    clean_points = {p["id"]: p for p in clean["points"]}
    assert set(ids) == set(clean_points), f"{where}: point ids differ from a clean run"
    assert {k: v.hash for k, v in snap["table"].items()} == {k: v.hash for k, v in clean["table"].items()}
    per_file: dict[str, int] = {}
    for p in snap["points"]:
        pl, vec = p["payload"], p["vectors"]
        rec = snap["table"].get(pl["path"])
        assert rec is not None and pl["file_hash"] == rec.hash, f"{where}: {p['id']} disagrees with files"
        per_file[pl["path"]] = per_file.get(pl["path"], 0) + 1
        want = {"image", "text", BM25} if pl["modality"] == "image" else {"text", BM25}
        assert set(vec) == want, f"{where}: {p['id']} ({pl['modality']}) has vectors {sorted(vec)}"
        ref = clean_points[p["id"]]["vectors"]
        for space in ("image", "text"):
            if space in vec:
                a, b = np.asarray(vec[space]), np.asarray(ref[space])
                assert a.shape == (clean["dims"][space],)
                assert float(a @ b) > 0.999, f"{where}: {p['id']} {space} vector differs"
        assert vec[BM25].indices == ref[BM25].indices
    assert per_file == {k: v.points for k, v in snap["table"].items()}, f"{where}: point counts per file"


@pytest.fixture
def fast_tmp(tmp_path: Path) -> Iterator[Path]:
    """A temporary folder on /dev/shm when it is there, else pytest's tmp_path."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    folder = Path(tempfile.mkdtemp(prefix="mmrag-crash-", dir=shm))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_sigkill_at_random_points_then_resume(fast_tmp: Path) -> None:
    tmp_path = fast_tmp
    corpus = _corpus(tmp_path / "corpus")
    driver = _Driver()

    def argv(idx: Path) -> list[str]:
        return ["index", str(corpus), "--index", str(idx), "--profile", "offline", "--no-progress", "--json"]

    try:
        (clean_run,) = driver.run(argv(tmp_path / "clean"), [None])
        assert clean_run["code"] == 0
        clean = _snapshot(tmp_path / "clean")
        assert clean["count"] > 10 and any(p["payload"]["modality"] == "image" for p in clean["points"])
        rng = random.Random(SEED)
        span = clean_run["seconds"]
        killed = 0
        for trial in range(TRIALS):
            idx = tmp_path / f"trial{trial:02d}"
            kills = 2 if trial % 4 == 3 else 1
            delays: list[float | None] = [rng.uniform(0.0, span) for _ in range(kills)]
            results = driver.run(argv(idx), [*delays, None])
            killed += sum(r["killed"] for r in results[:-1])
            assert all(r["killed"] or r["code"] == 0 for r in results[:-1]), results
            assert results[-1]["code"] == 0, f"trial {trial}: the rerun failed: {results}"
            _check(_snapshot(idx), clean, f"trial {trial} (delays {delays})")
    finally:
        driver.close()
    # the delays are drawn inside a clean run's duration: nearly every run must have been cut short
    assert killed >= TRIALS, f"only {killed} runs were killed before they finished"
    print(f"crash trials: {TRIALS}, runs killed with SIGKILL: {killed}")
