"""A crash mid-index (the process killed between files and inside a file) then a rerun: same points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from mmrag import Pipeline

CRASHER = textwrap.dedent(
    """
    import os, sys
    from mmrag import Pipeline
    import mmrag.index.indexer as ix

    after = int(sys.argv[3])
    mode = sys.argv[4]
    done = []
    if mode == "inside":
        # Die inside a file: after its first group of points is upserted, before it is recorded.
        real = ix.embed_chunks
        def dying(*a, **k):
            pts = real(*a, **k)
            if len(done) >= after:
                os._exit(137)
            return pts
        ix.embed_chunks = dying
    opts = {"encoders.ocr": False, "ingest.commit_seconds": float(sys.argv[5])}
    p = Pipeline.from_config(profile="offline", index=sys.argv[1], **opts)
    def on_file(path, n):
        done.append(path)
        if mode == "between" and len(done) >= after:
            os._exit(137)  # like SIGKILL: no cleanup, no flush beyond what the indexer did
    p.index([sys.argv[2]], on_file=on_file)
    """
)


def _corpus(root: Path, n: int = 6) -> Path:
    root.mkdir()
    for i in range(n):
        words = " ".join(f"w{i}x{j}" for j in range(400))  # several chunks per file
        (root / f"doc{i}.txt").write_text(f"Document number {i}. " + words)
    return root


def _crash(idx: Path, corpus: Path, after: int, mode: str, commit_seconds: float = 0.0) -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    argv = [sys.executable, "-c", CRASHER, str(idx), str(corpus), str(after), mode, str(commit_seconds)]
    proc = subprocess.run(argv, env=env, capture_output=True)
    return proc.returncode


def test_crash_between_and_inside_files_then_resume(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    with Pipeline.from_config(profile="offline", index=tmp_path / "clean", **{"encoders.ocr": False}) as p:
        p.index([corpus])
        expected = p.store.count()
        expected_ids = {x["id"] for x in p.store.scroll()}
    idx = tmp_path / "crashed"
    assert _crash(idx, corpus, 2, "between") == 137
    assert _crash(idx, corpus, 3, "inside") == 137
    # Batched commits: files finished but not yet recorded when the process dies are redone.
    assert _crash(idx, corpus, 5, "between", commit_seconds=3600) == 137
    with Pipeline.from_config(profile="offline", index=idx, **{"encoders.ocr": False}) as p:
        report = p.index([corpus])
        assert report.files_skipped >= 2  # files recorded before the first crash are not redone
        assert not report.errors
        assert p.store.count() == expected
        assert {x["id"] for x in p.store.scroll()} == expected_ids
