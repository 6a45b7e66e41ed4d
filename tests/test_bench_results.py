"""Committed results hold no absolute path of the machine that ran them, and the writers keep it so."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from mmrag.evals import REPO, portable_paths, write_json, write_run

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"
# an absolute path of a development or CI machine: at the start of a string or after a space, `=` or quote
ABSOLUTE = re.compile(r"(?:^|[\s='\"(])(/(?:work|tmp|root|home|Users|var/folders|private)(?:/|$))")


def strings(data: Any) -> list[str]:
    """Every string in a JSON document, keys included."""
    if isinstance(data, dict):
        return [s for k, v in data.items() for s in [k, *strings(v)]]
    if isinstance(data, list):
        return [s for v in data for s in strings(v)]
    return [data] if isinstance(data, str) else []


def absolute_paths(data: Any) -> list[str]:
    return [s for s in strings(data) if ABSOLUTE.search(s)]


def test_committed_results_hold_no_absolute_paths() -> None:
    files = sorted(RESULTS.glob("*.json"))
    assert files, f"no results found in {RESULTS}"
    found = {f.name: bad for f in files if (bad := absolute_paths(json.loads(f.read_text(encoding="utf-8"))))}
    assert not found, f"absolute machine paths in bench/results: {found}"


def test_the_checker_sees_paths_inside_strings() -> None:
    assert absolute_paths(
        {"out": "/work/main/x.json", "cmd": "python x.py --data /tmp/d", "k": ["/root"]}
    ) == [
        "/work/main/x.json",
        "python x.py --data /tmp/d",
        "/root",
    ]
    assert absolute_paths({"data": "../shared/data/x", "bridge": "~/.cache/mmrag", "rate": "3/4"}) == []


def test_portable_paths_rewrites_machine_paths() -> None:
    home = str(Path.home())
    shared = REPO.parent / "shared" / "data"
    data = {
        "run": str(REPO / "runs" / "easy-vqa" / "1"),
        "repo": str(REPO),
        "data": str(shared / "multihop" / "test.json"),
        "bridge": f"{home}/.cache/mmrag/bridges/efficientnet-smollm2",
        "cmd": f"python bench/x.py --out {REPO}/bench/results/x.json",
        "list": [str(shared)],
        "other": str(REPO) + "-other/x",  # a sibling folder whose name starts like the checkout's
        "n": 3,
    }
    out = portable_paths(data)
    assert out["run"] == "runs/easy-vqa/1"
    assert out["repo"] == "."
    assert out["data"] == "../shared/data/multihop/test.json"
    assert out["bridge"] == "~/.cache/mmrag/bridges/efficientnet-smollm2"
    assert out["cmd"] == "python bench/x.py --out bench/results/x.json"
    assert out["list"] == ["../shared/data"]
    assert not out["other"].startswith(".") and out["n"] == 3


def test_portable_paths_rewrites_the_temporary_folder(tmp_path: Path) -> None:
    out = portable_paths({"workdir": str(tmp_path / "bench")})
    assert out["workdir"].startswith(("$TMPDIR/", "~/", "../", "runs/")), out
    assert not absolute_paths(out)


def test_write_json_is_portable_and_run_folders_keep_their_paths(tmp_path: Path) -> None:
    metrics = {"run": str(REPO / "runs" / "x"), "generator": f"{Path.home()}/.cache/mmrag/b"}
    write_json(tmp_path / "bench.json", metrics)
    assert json.loads((tmp_path / "bench.json").read_text()) == {
        "run": "runs/x",
        "generator": "~/.cache/mmrag/b",
    }
    run = write_run(tmp_path / "runs", "suite", [], metrics, "md", {"data": str(REPO)})
    assert json.loads((run / "metrics.json").read_text()) == metrics  # local run folders stay absolute
    assert json.loads((run / "config.json").read_text()) == {"data": str(REPO)}


def test_bench_writer_uses_portable_paths(tmp_path: Path) -> None:
    """`bench/common.py`'s writer, the one every bench script writes its result with."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_common", RESULTS.parent / "common.py")
    assert spec is not None and spec.loader is not None
    common = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(common)
    out = tmp_path / "r.json"
    before = time.strftime("%Y-%m-%d")
    common.write_result({"out": str(REPO / "bench" / "results" / "r.json")}, out, lambda r, p: None)
    written = json.loads(out.read_text())
    assert written.pop("date") in {before, time.strftime("%Y-%m-%d")}  # the docs' tables show the day
    assert written == {"out": "bench/results/r.json"}
    common.write_json({"date": "2026-01-02", "n": 1}, out)  # a result's own date is kept
    assert json.loads(out.read_text()) == {"date": "2026-01-02", "n": 1}


def test_docs_hold_no_absolute_paths() -> None:
    """The README and docs/ are pasted from real runs: their machine paths are elided."""
    root = RESULTS.parents[1]
    found = {
        str(f.relative_to(root)): [
            line for line in f.read_text(encoding="utf-8").splitlines() if ABSOLUTE.search(line)
        ]
        for f in [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    }
    found = {k: v for k, v in found.items() if v}
    assert not found, f"absolute machine paths in the docs: {found}"


def test_ci_runs_the_readme_test_command() -> None:
    """`.ci/run` runs exactly the README's second command (the first installs and runs the sample)."""
    root = RESULTS.parents[1]
    blocks = re.findall(r"```bash\n(.*?)\n```", (root / "README.md").read_text(), re.S)
    assert len(blocks) >= 2
    lines = [ln for ln in (root / ".ci" / "run").read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines[-1] == blocks[1].strip(), "the README's test command and .ci/run differ"
