"""ruff and mypy stay clean: part of the test command, so CI checks them like any test."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("ruff") is None, reason="ruff not installed (pip install -e '.[dev]')")
def test_ruff_clean() -> None:
    r = _run("ruff", "check", "mmrag", "connectors", "evals", "prompts", "tests", "bench", "docs")
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.slow
def test_mypy_clean() -> None:
    pytest.importorskip("mypy", reason="mypy not installed (pip install -e '.[dev]')")
    r = _run(sys.executable, "-m", "mypy", "mmrag", "connectors/llama_index")
    assert r.returncode == 0, r.stdout + r.stderr


def test_import_is_light() -> None:
    """`import mmrag` (and the CLI module) pull in neither torch, transformers nor qdrant."""
    code = (
        "import sys, mmrag, mmrag.cli, mmrag.config, mmrag.registry;"
        "heavy = [m for m in ('torch', 'transformers', 'qdrant_edge', 'qdrant_client', 'av', 'pypdfium2')"
        " if m in sys.modules]; print(','.join(heavy))"
    )
    r = _run(sys.executable, "-c", code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""
