"""Evaluation suites (installed as `mmrag.evals`); each writes `runs/<suite>/<timestamp>/`."""

from __future__ import annotations

import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
"""The checkout (`evals/` sits at its top; the editable install maps `mmrag.evals` here)."""


def _roots() -> list[tuple[str, str]]:
    """(absolute folder, what to write instead), most specific first: the checkout (relative paths),
    the shared data (`../shared/data`, its name beside the checkout), the home folder (`~`), the
    temporary folder (`$TMPDIR`)."""
    shared = os.environ.get("MMRAG_SHARED_DATA")
    pairs = [
        (REPO, "."),
        (REPO.parent / "shared" / "data", "../shared/data"),
        *([(Path(shared), "$MMRAG_SHARED_DATA")] if shared else []),
        (Path.home(), "~"),
        (Path(tempfile.gettempdir()), "$TMPDIR"),
    ]
    out: list[tuple[str, str]] = []
    for folder, name in pairs:
        for form in dict.fromkeys([str(folder), str(folder.resolve())]):
            if len(form) > 1 and not any(form == f for f, _ in out):
                out.append((form, name))
    return out


def portable_paths(data: Any) -> Any:
    """`data` with every absolute path of this machine rewritten: relative to the checkout,
    `../shared/data/...`, `~/...` or `$TMPDIR/...`, inside longer strings (commands) too.

    Committed results (`bench/results/*.json`) go through it, so they read the same on any machine.
    """
    if isinstance(data, dict):
        return {k: portable_paths(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [portable_paths(v) for v in data]
    if not isinstance(data, str) or "/" not in data:
        return data
    for root, name in _roots():
        # the folder itself, or a path below it; never a longer name that merely starts the same
        pattern = re.compile(re.escape(root) + r"(/[^\s\"']*)?(?![\w.-])")
        data = pattern.sub(_replacer(name), data)
    return data


def _replacer(name: str) -> Callable[[re.Match[str]], str]:
    """The substitution for one root: `name`, then the rest of the path below it."""

    def replace(m: re.Match[str]) -> str:
        rest = m.group(1)
        if not rest or rest == "/":
            return name
        return rest.lstrip("/") if name == "." else name + rest

    return replace


def write_json(path: str | Path, data: Any, portable: bool = True) -> None:
    """Pretty JSON with a trailing newline, creating the folder; machine paths made portable
    (`portable_paths`) unless `portable` is False (run folders, which stay on this machine)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = portable_paths(data) if portable else data
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


def write_run(
    runs: str | Path,
    suite: str,
    rows: list[dict[str, Any]],
    metrics: dict[str, Any],
    markdown: str,
    config: dict[str, Any],
) -> Path:
    """`runs/<suite>/<timestamp>/` with samples.jsonl, metrics.json, metrics.md and config.json."""
    run = Path(runs) / suite / time.strftime("%Y%m%d-%H%M%S")
    run.mkdir(parents=True, exist_ok=True)
    (run / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    write_json(run / "metrics.json", metrics, portable=False)
    (run / "metrics.md").write_text(markdown, encoding="utf-8")
    write_json(run / "config.json", config, portable=False)
    return run
