"""The Typer CLI: JSON on stdout, diagnostics on stderr, exit codes 0 / 1 (a file failed) / 2 (bad usage)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mmrag.cli import app

runner = CliRunner()


def _corpus(root: Path) -> Path:
    root.mkdir()
    (root / "a.txt").write_text("The quarterly dividend was raised to forty cents per share.")
    (root / "b.txt").write_text("The museum opened a new wing for impressionist paintings.")
    return root


def test_index_search_info_models(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c")
    idx = str(tmp_path / "idx")
    r = runner.invoke(app, ["index", str(corpus), "--index", idx, "--profile", "offline", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.stdout)
    assert rep["files_indexed"] == 2 and rep["points_total"] >= 2

    r = runner.invoke(app, ["search", "dividend per share", "--index", idx, "-k", "1", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    hits = out["hits"]
    assert len(hits) == 1 and hits[0]["path"].endswith("a.txt") and hits[0]["modality"] == "text"
    assert out["k"] == 1 and out["query"] == "dividend per share" and "search" in out["timings"]
    assert "payload" not in hits[0]

    r = runner.invoke(app, ["search", "paintings", "--index", idx, "-k", "2"])
    assert r.exit_code == 0 and "b.txt" in r.stdout

    r = runner.invoke(app, ["info", "--index", idx, "--json"])
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["files"] == 2 and info["encoders"]["text"]["id"].endswith("all-MiniLM-L6-v2")

    r = runner.invoke(app, ["models", "ls", "--json"])
    assert r.exit_code == 0
    ids = {m["id"] for m in json.loads(r.stdout)}
    assert {"efficientnet-lite0", "openai/clip-vit-base-patch32"} <= ids


def test_exit_codes(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "c")
    (corpus / "broken.pdf").write_bytes(b"%PDF-1.4 garbage")
    idx = str(tmp_path / "idx")
    r = runner.invoke(app, ["index", str(corpus), "--index", idx, "--profile", "offline", "--no-progress"])
    assert r.exit_code == 1
    assert "broken.pdf" in r.stderr and "a.txt" not in r.stderr
    r = runner.invoke(app, ["search", "x", "--index", idx, "--modality", "hologram"])
    assert r.exit_code == 2 and "unknown modality" in r.stderr
    r = runner.invoke(app, ["search", "--index", idx])
    assert r.exit_code == 2
    r = runner.invoke(app, ["info", "--index", str(tmp_path / "nowhere")])
    assert r.exit_code == 2 and "no index here" in r.stderr
    r = runner.invoke(app, ["index", str(corpus), "--index", str(tmp_path / "i2"), "--profile", "bogus"])
    assert r.exit_code == 2 and "unknown profile" in r.stderr
