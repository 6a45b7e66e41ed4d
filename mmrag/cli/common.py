"""Output helpers shared by the command modules (the options live in `mmrag.cli.options`).

Results go to stdout (tables, or JSON with `--json`); diagnostics go to stderr. Exit codes:
0 success, 1 some files failed (the rest were indexed), 2 bad usage or an error before any work.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer


def console(stderr: bool = False) -> Any:
    """A rich console that never hard-wraps when its stream is not a terminal.

    Rich wraps at 80 columns when it cannot read a width: an error piped to a log would arrive
    broken in the middle of a path. Off a terminal, lines keep their length (`soft_wrap`).
    """
    from rich.console import Console

    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, soft_wrap=not stream.isatty())


def stderr_console() -> Any:
    return console(stderr=True)


def stdout_console() -> Any:
    return console()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def print_report(err: Any, report: Any, points: int | None = None) -> None:
    """An `IndexReport` as `mmrag index` prints it (on `err`): counts, then ignored and failed files."""
    from rich.markup import escape

    total = f" ({points} in the index)" if points is not None else ""
    err.print(
        f"[bold]indexed[/] {report.files_indexed} files, skipped {report.files_skipped} unchanged, "
        f"{len(report.errors)} failed; wrote {report.points_written} points{total} in {report.seconds:.1f}s",
        highlight=False,
    )
    for e in report.ignored:
        err.print(f"[dim]ignored {escape(e.path)}: {escape(e.reason)}[/]", highlight=False, markup=True)
    for e in report.errors:  # a file name may hold brackets: escape it, never parse it as markup
        err.print(f"[red]failed[/] {escape(e.path)}: {escape(e.reason)}", highlight=False, markup=True)


def fail(message: str, code: int = 2) -> NoReturn:
    from rich.markup import escape

    # messages carry file names, which may hold brackets: never parse them as markup
    stderr_console().print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn mmrag's user-facing errors into a one-line message and exit code 2."""
    from mmrag.types import MMRAGError

    try:
        yield
    except MMRAGError as e:
        fail(str(e))


def shown_path(path: str) -> str:
    """A path as the CLI prints it: relative to the working directory when that is short
    (`../data/report.pdf`), else under `~`, else absolute; links keep the absolute path."""
    import os

    p = Path(path)
    try:
        rel = os.path.relpath(p)
    except ValueError:  # another drive
        return path
    if rel.split(os.sep).count("..") <= 2:
        return rel
    home = Path.home()
    return f"~{os.sep}{p.relative_to(home)}" if p.is_relative_to(home) else path


def open_pipeline(
    index: Path, profile: str | None, config: Path | None, qdrant_url: str | None, **overrides: Any
) -> Any:
    """An existing index reopens with its own encoders; a new one is built from profile/config/env."""
    from mmrag.index.folder import read_manifest
    from mmrag.pipeline import Pipeline

    dotted = {("store.url" if k == "qdrant_url" else k): v for k, v in overrides.items()}
    if qdrant_url:
        dotted["store.url"] = qdrant_url
    if read_manifest(index.expanduser().resolve()) is not None and profile is None and config is None:
        return Pipeline.load(index, **dotted)
    return Pipeline.from_config(profile=profile, index=index, config_file=config, **dotted)


def guarded(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorator form of `user_errors` for command functions."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with user_errors():
            return fn(*args, **kwargs)

    return wrapper
