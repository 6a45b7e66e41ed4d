"""Evaluation suites (installed as `mmrag.evals`); each writes `runs/<suite>/<timestamp>/`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any


def write_json(path: str | Path, data: Any) -> None:
    """Pretty JSON with a trailing newline, creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


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
    write_json(run / "metrics.json", metrics)
    (run / "metrics.md").write_text(markdown, encoding="utf-8")
    write_json(run / "config.json", config)
    return run
