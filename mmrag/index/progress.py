"""The progress bar of long index operations (indexing files, copying points), on stderr, or nothing."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

Advance = Callable[..., None]
"""`advance(n, label=None)`: `n` more done; `label`, when given, replaces the text after the bar."""


@contextlib.contextmanager
def progress_bar(
    enabled: bool,
    total: int,
    title: str,
    done: int = 0,
    label: str = "",
    status: Callable[[], str] | None = None,
) -> Iterator[Advance]:
    """A rich progress bar on stderr (`title`, bar, done/total, elapsed time, `label`), or nothing.

    Args:
        enabled: False yields an `advance` that does nothing (rich is not imported).
        total: Units of work (files, points).
        title: Bold text before the bar (rich markup allowed).
        done: Units already done (a resumed run).
        label: Plain text after the bar (never read as markup: file names may hold brackets).
        status: Called at every refresh (10 times a second, from rich's thread) for text shown
            after the label: live counters such as the audio minutes transcribed.

    Yields:
        `advance(n, label=None)`. The bar stops when the block ends, also on an error.
    """
    if not enabled:
        yield lambda n, label=None: None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.text import Text

    class _Status(ProgressColumn):
        def render(self, task: object) -> Text:
            return Text(status() if status is not None else "")

    bar = Progress(
        TextColumn(f"[bold]{title}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}", markup=False),
        _Status(),
        console=Console(stderr=True),
    )
    task = bar.add_task(label, total=total, completed=done)

    def advance(n: int, label: str | None = None) -> None:
        if label is None:
            bar.update(task, advance=n)
        else:
            bar.update(task, advance=n, description=label)

    with bar:
        yield advance
