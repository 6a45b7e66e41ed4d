"""Bad input: every hostile or broken file gets one clear error, nothing else is lost, memory stays bounded.

The corpus comes from `tests/badfiles.py`. The same corpus goes through `Pipeline` (errors, search,
a file rewritten while it is read), through the command line in a child process (exit code 1,
summary, peak memory against a run over the good files alone), and through `--strict` (exit 2 at
the first bad file). A second process opening an index that is being written gets
`IndexLockedError`, never a half-written read.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from badfiles import BadCorpus, make_bad_corpus  # noqa: E402

import mmrag.index.indexer as indexer_mod  # noqa: E402
from mmrag import Pipeline  # noqa: E402
from mmrag.cli import app  # noqa: E402
from mmrag.config import IngestConfig  # noqa: E402
from mmrag.ingest import discover  # noqa: E402
from mmrag.store.base import SearchFilter  # noqa: E402
from mmrag.types import IndexLockedError  # noqa: E402

OFFLINE = {"encoders.ocr": False, "ingest.clip_seconds": 2.0}
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "MMRAG_ENCODERS_OCR": "0"}
CLI = [sys.executable, "-c", "from mmrag.cli import main; main()"]
# Extra peak memory the bad files may cost over a run on the good files alone. Decoding the bomb
# would take 81 MB as one-bit pixels and 243 MB as RGB; the 10-gigapixel liar would not fit at all.
MEMORY_SLACK_MB = 150


@pytest.fixture(scope="module")
def bad(tmp_path_factory: pytest.TempPathFactory) -> BadCorpus:
    return make_bad_corpus(tmp_path_factory.mktemp("bad") / "corpus")


# The child's own peak RSS (VmHWM), written at exit. Not getrusage: Linux starts a child's maxrss
# at its parent's RSS when it execs, and pytest here already holds the models.
PEAK = (
    "import atexit, os, re\n"
    "def peak():\n"
    "    status = open('/proc/self/status').read()\n"
    "    open(os.environ['MMRAG_TEST_PEAK'], 'w').write(re.search(r'VmHWM:\\s*(\\d+)', status).group(1))\n"
    "atexit.register(peak)\n"
    "from mmrag.cli import main\n"
    "main()\n"
)


def _cli(args: list[str], out: Path) -> tuple[int, str, int]:
    """Run `mmrag` in a child process: (exit code, stderr, peak RSS in KB)."""
    if not Path("/proc/self/status").exists():
        pytest.skip("peak memory is read from /proc (Linux)")
    peak = out.with_suffix(".peak")
    env = {**ENV, "MMRAG_TEST_PEAK": str(peak)}
    with open(out, "wb") as f:
        code = subprocess.run(
            [sys.executable, "-c", PEAK, *args], stdout=subprocess.DEVNULL, stderr=f, env=env
        )
    return code.returncode, out.read_text(encoding="utf-8", errors="replace"), int(peak.read_text())


def test_bad_corpus_through_pipeline(bad: BadCorpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    growing = bad.root.parent / "growing.txt"
    growing.write_text("A log file that is still being written when the indexer reads it. " * 20)
    real = indexer_mod.embed_chunks

    def writer_gets_in(chunks, *args, **kwargs):  # type: ignore[no-untyped-def]
        if chunks and chunks[0].path == str(growing):
            with open(growing, "a") as f:  # another process appends while the file is being read
                f.write("One more line.\n")
        return real(chunks, *args, **kwargs)

    monkeypatch.setattr(indexer_mod, "embed_chunks", writer_gets_in)
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **OFFLINE) as p:
        report = p.index([bad.root, growing])
        reported = [e.path for e in report.errors]
        assert len(reported) == len(set(reported)), "a file was reported twice"
        expected = {**bad.bad, str(growing): ("changed while it was being indexed",)}
        assert set(reported) == set(expected), (set(reported) ^ set(expected), report.errors)
        for e in report.errors:
            assert e.reason.strip(), e
            assert any(w in e.reason.lower() for w in expected[e.path]), e
        assert {e.path: e.reason for e in report.ignored}.keys() == bad.ignored.keys()
        assert all(bad.ignored[e.path] in e.reason for e in report.ignored)
        assert report.files_indexed == len(bad.good)
        indexed = {r.path for r in p.files.all()}
        assert indexed == set(bad.good)
        assert not p.store.count(SearchFilter(paths=[str(growing)]))  # its points were dropped
        for path, query in bad.good.items():
            assert path in [h.path for h in p.search(query, k=3)], (path, query)

        # a file that turns bad keeps its old points until a good version replaces them
        ferries = next(p_ for p_ in bad.good if p_.endswith("ferries.txt"))
        before = Path(ferries).read_bytes()
        Path(ferries).write_bytes(b"\x00\xff" * 300)
        try:
            again = p.index([ferries])
        finally:
            Path(ferries).write_bytes(before)
        assert [(e.path, "binary" in e.reason) for e in again.errors] == [(ferries, True)]
        assert p.search(bad.good[ferries], k=1)[0].path == ferries
    print(f"bad inputs tried: {len(expected)}; left out: {bad.notes}")


def test_cli_summary_exit_code_and_memory(bad: BadCorpus, tmp_path: Path) -> None:
    base = ["--profile", "offline", "--no-progress", "--clip-seconds", "2"]
    code, err, peak = _cli(["index", str(bad.root), "--index", str(tmp_path / "all"), *base], tmp_path / "a")
    assert code == 1, err
    assert f"indexed {len(bad.good)} files" in err and f"{len(bad.bad)} failed" in err, err
    for path in bad.bad:
        assert Path(path).name in err, path  # names are printed as they are, "[red]oops.png" too
    good_code, good_err, good_peak = _cli(
        ["index", *bad.good, "--index", str(tmp_path / "good"), *base], tmp_path / "g"
    )
    assert good_code == 0, good_err
    extra_mb = (peak - good_peak) / 1024
    print(f"peak RSS: bad corpus {peak} KB, good files only {good_peak} KB")
    assert extra_mb < MEMORY_SLACK_MB, f"bad files cost {extra_mb:.0f} MB more peak memory"


def test_strict_stops_at_first_bad_file(bad: BadCorpus, tmp_path: Path) -> None:
    runner = CliRunner()
    first, second = sorted(bad.good)[:2]
    broken = str(bad.root / "cut.png")
    idx = tmp_path / "idx"
    args = ["index", first, broken, second, "--index", str(idx), "--profile", "offline", "--no-progress"]
    r = runner.invoke(app, [*args, "--strict"], env={"MMRAG_ENCODERS_OCR": "0"})
    assert r.exit_code == 2, r.output
    assert broken in r.stderr and "truncated" in r.stderr
    with Pipeline.load(idx) as p:
        assert [f.path for f in p.files.all()] == [first]  # nothing after the bad file was touched
    # errors found while walking folders stop it too, before any file is read
    r = runner.invoke(
        app,
        ["index", str(bad.root), "--index", str(tmp_path / "i2"), "--profile", "offline", "--strict"],
        env={"MMRAG_ENCODERS_OCR": "0"},
    )
    assert r.exit_code == 2 and any(Path(b).name in r.stderr for b in bad.bad), r.stderr


def test_folder_symlink_loop_followed(tmp_path: Path) -> None:
    root = tmp_path / "tree"
    (root / "a").mkdir(parents=True)
    (root / "a" / "note.txt").write_text("hello")
    (root / "a" / "back").symlink_to(root, target_is_directory=True)
    files, errors = discover([root], IngestConfig(follow_symlinks=True))
    assert files == [root / "a" / "note.txt"]
    assert [(e.path, e.reason.startswith("symbolic link loop")) for e in errors] == [
        (str(root / "a" / "back"), True)
    ]
    files, errors = discover([root], IngestConfig(follow_symlinks=False))
    assert files == [root / "a" / "note.txt"] and not errors


def test_unreadable_file(tmp_path: Path) -> None:
    locked = tmp_path / "secret.txt"
    locked.write_text("no")
    locked.chmod(0)
    if os.access(locked, os.R_OK):
        pytest.skip("running as root: permission bits do not stop reads")
    files, errors = discover([tmp_path], IngestConfig())
    assert not files and [(e.path, e.reason) for e in errors] == [(str(locked), "permission denied")]


@pytest.mark.parametrize("depth", [0, 160], ids=["short-path", "long-path"])
def test_second_process_gets_index_locked(tmp_path: Path, depth: int) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"d{i:02d}.txt").write_text(f"Document {i}. " + " ".join(f"w{i}x{j}" for j in range(300)))
    # the error must come out whole on one line however long the path (rich wrapped it at 80 columns)
    idx = (tmp_path / ("d" * depth) if depth else tmp_path) / "idx"
    lock = idx / ".lock"
    args = ["index", str(corpus), "--index", str(idx), "--profile", "offline", "--no-progress"]
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not (lock.exists() and lock.read_text().strip() == str(proc.pid)):
            assert proc.poll() is None, "the indexing process ended before it took the lock"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        with pytest.raises(
            IndexLockedError, match=rf"index .* is locked by another process \(pid {proc.pid}\)"
        ):
            with Pipeline.from_config(profile="offline", index=idx, **OFFLINE) as p:
                p.search("document", k=1)
        r = CliRunner().invoke(app, ["search", "document", "--index", str(idx)])
        assert r.exit_code == 2, r.output
        line = f"index {idx.resolve()} is locked by another process (pid {proc.pid})"
        assert any(line in row for row in r.stderr.splitlines()), r.stderr
        assert proc.poll() is None, "the search must have raced an index still being written"
    finally:
        proc.kill()
        proc.wait()
    # the lock dies with its process: the killed index opens and answers
    with Pipeline.from_config(profile="offline", index=idx, **OFFLINE) as p:
        p.search("document", k=1)
