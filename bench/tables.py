"""The benchmark tables of the docs, rendered from `bench/results/*.json`: no number is typed by hand.

Each table is a `[[table]]` in `bench/tables.toml` (which JSON, which rows, which columns) and a pair
of marker comments in a page (`<!-- table:NAME -->` ... `<!-- /table:NAME -->`); everything between
the markers is rewritten from the JSON, with a caption naming the file, the split, the model and the
date of the run. A README headline number is a `[[headline]]`, one line between
`<!-- headline:NAME -->` markers.

    python bench/tables.py            # rewrite every table and headline from the JSON
    python bench/tables.py --check    # exit 1 and name the stale ones (tests/test_bench_tables.py)

To add a table: copy a `[[table]]` in `bench/tables.toml` and edit it (the file's header says what
each field means), put the two marker lines where it belongs in its page, and run
`python bench/tables.py`. `docs/benchmarks.md` says the same for readers.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
SPECS = ROOT / "bench" / "tables.toml"
BENCHMARKS = "docs/benchmarks.md"

# The day each result was committed, for the older files that record neither a `date` nor a run
# folder (`runs/<suite>/YYYYMMDD-HHMMSS`); a JSON written now by `bench/common.write_json` carries
# its own `date`, which always wins.
COMMITTED = {
    "answer.json": "2026-12-02",
    "answer_models_dev12_prompts.json": "2026-12-07",
    "answer_models_dev16_qwen_prompts.json": "2026-12-07",
    "answer_models_test.json": "2026-12-07",
    "cli_latency.json": "2026-12-07",
    "hubness_dev.json": "2026-11-22",
    "indexing.json": "2026-12-02",
    "onnx_parity.json": "2026-12-07",
    "pages.json": "2026-12-02",
    "search.json": "2026-11-23",
    "search_routing.json": "2026-12-02",
    "serve_load.json": "2026-12-07",
    "store.json": "2026-12-02",
    "store_1m.json": "2026-11-23",
    "video.json": "2026-12-03",
    "video_nocaptions.json": "2026-11-23",
}
_RUN = re.compile(r"(?:^|/)(\d{4})(\d{2})(\d{2})-\d{6}$")


@dataclass(frozen=True)
class Col:
    """A column: its header, the path it reads below a row, its format, another JSON to read it from."""

    header: str
    path: str
    fmt: str = "auto"
    source: str | None = None


@dataclass(frozen=True)
class Row:
    """A row written out: a path in the JSON, what `{key}` stands for, or one path per column."""

    label: str
    path: str = ""
    key: str = ""
    cells: tuple[str, ...] = ()


@dataclass(frozen=True)
class Table:
    """One `[[table]]` of `bench/tables.toml` (its header says what each field means)."""

    name: str
    source: str
    columns: tuple[Col, ...]
    page: str = BENCHMARKS
    rows: str | tuple[Row, ...] = "configs"
    keys: tuple[str, ...] = ()
    label: str = "{key}"
    labels: dict[str, str] = field(default_factory=dict)
    corner: str = "configuration"
    split: str = "split"
    model: str = "models"


@dataclass(frozen=True)
class Headline:
    """One `[[headline]]`: a line whose `text` template is filled from `values` (name -> path, format)."""

    name: str
    page: str
    source: str
    text: str
    values: dict[str, tuple[str, str]]


def load_specs(path: Path = SPECS) -> tuple[list[Table], list[Headline]]:
    """The tables and headlines of `bench/tables.toml`."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    tables = []
    for spec in data.get("table", []):
        rows = spec.get("rows", "configs")
        if not isinstance(rows, str):
            rows = tuple(Row(**{**r, "cells": tuple(r.get("cells", ()))}) for r in rows)
        columns = tuple(Col(**c) for c in spec["columns"])
        tables.append(
            Table(**{**spec, "rows": rows, "columns": columns, "keys": tuple(spec.get("keys", ()))})
        )
    headlines = [
        Headline(**{**h, "values": {k: (v[0], v[1]) for k, v in h["values"].items()}})
        for h in data.get("headline", [])
    ]
    return tables, headlines


TABLES, HEADLINES = load_specs()


@dataclass(frozen=True)
class Stale:
    """A table or headline whose page text differs from what its JSON renders."""

    kind: str
    name: str
    page: str
    reason: str


def lookup(data: Any, path: Sequence[str]) -> Any:
    """The value at `path` in nested dicts and lists (list steps are indexes); None when absent."""
    for step in path:
        if isinstance(data, dict):
            data = data.get(step)
        elif isinstance(data, list) and step.isdigit() and int(step) < len(data):
            data = data[int(step)]
        else:
            return None
    return data


def split_path(path: str) -> list[str]:
    """`a.b.c` -> [a, b, c]; a key holding dots goes in brackets: `models.[qwen2.5-coder-0.5b].n`."""
    return [quoted or plain for quoted, plain in re.findall(r"\[([^\]]+)\]|([^.\[\]]+)", path)]


def fmt(value: Any, spec: str) -> str:
    """A cell: blank for a missing value, the text as is, a number through `spec` (`{:.3f}`)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        if spec == "auto":
            return f"{value:,}" if isinstance(value, int) else f"{value:.3f}"
        return spec.format(value)
    return str(value)


def load(source: str, results: Path) -> dict[str, Any]:
    path = results / source
    if not path.is_file():
        raise SystemExit(f"{path}: no such result (bench/tables.toml names it)")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _runs(data: Any) -> Iterator[str]:
    """Every `run` folder named anywhere in a result, in document order."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "run" and isinstance(value, str):
                yield value
            else:
                yield from _runs(value)
    elif isinstance(data, list):
        for value in data:
            yield from _runs(value)


def run_date(data: dict[str, Any], source: str) -> str:
    """The date of a result: its `date`, else its latest run folder's day, else the day it was committed."""
    if isinstance(data.get("date"), str):
        return str(data["date"])
    days = sorted(f"{m[1]}-{m[2]}-{m[3]}" for r in _runs(data) if (m := _RUN.search(r)))
    if days:
        return days[-1]
    return f"committed {COMMITTED[source]}" if source in COMMITTED else "not recorded"


def described(data: dict[str, Any], path: str) -> str:
    """`split` or `model` of a caption: `=text` is literal, else a JSON path (a dict's values joined)."""
    if path.startswith("="):
        return path[1:]
    value = lookup(data, split_path(path))
    if isinstance(value, dict):
        value = ", ".join(str(v) for v in value.values() if v not in (None, "", True, False))
    return str(value) if value not in (None, "") else "-"


@dataclass(frozen=True)
class Line:
    """One row as rendered: its label, its path in the JSON, and what `{key}` stands for."""

    label: str
    path: list[str]
    key: str
    data_key: bool
    """The key came from the data (kept whole: it may hold dots) rather than from a spec."""
    cells: tuple[str, ...] = ()


def rows_of(table: Table, data: dict[str, Any]) -> list[Line]:
    """Every row of `table`, in order."""
    if not isinstance(table.rows, str):
        return [Line(r.label, split_path(r.path), r.key or r.path, False, r.cells) for r in table.rows]
    base = split_path(table.rows)
    found = lookup(data, base)
    if isinstance(found, dict):
        entries = [(str(k), v) for k, v in found.items()]
    elif isinstance(found, list):
        entries = [(str(i), v) for i, v in enumerate(found)]
    else:
        raise SystemExit(f"table {table.name}: {table.source} has no mapping or list at {table.rows!r}")
    if table.keys:
        have = dict(entries)
        missing = [k for k in table.keys if k not in have]
        if missing:
            raise SystemExit(f"table {table.name}: {table.source} has no rows {missing} under {table.rows!r}")
        entries = [(k, have[k]) for k in table.keys]
    out = []
    for key, value in entries:
        scalars = (
            {k: v for k, v in value.items() if not isinstance(v, dict | list)}
            if isinstance(value, dict)
            else {}
        )
        label = table.labels.get(key) or table.label.format(key=key, **scalars)
        out.append(Line(label, [*base, key], key, True))
    return out


def cell(column: Col, line: Line, index: int, data: dict[str, Any], results: Path) -> str:
    """One cell: the column's path below the row's; or, with `{key}` in it, the column's path with the
    row's key in place (a key from the data stays one step, a key from a spec may name several)."""
    source = load(column.source, results) if column.source else data
    if line.cells:
        path = split_path(line.cells[index])
        return fmt(lookup(source, path), column.fmt) if path else ""
    if "{key}" not in column.path:
        full = [*line.path, *split_path(column.path)]
    elif line.data_key:
        full = [
            line.key if step == "{key}" else step.replace("{key}", line.key)
            for step in split_path(column.path)
        ]
    else:
        full = split_path(column.path.replace("{key}", line.key))
    return fmt(lookup(source, full), column.fmt)


def render_table(table: Table, results: Path = RESULTS) -> str:
    """The Markdown between a table's markers: its caption, then the table."""
    data = load(table.source, results)
    caption = (
        f"*`bench/results/{table.source}` · split: {described(data, table.split)} · "
        f"model: {described(data, table.model)} · date: {run_date(data, table.source)}*"
    )
    lines = [caption, "", "| " + " | ".join([table.corner, *(c.header for c in table.columns)]) + " |"]
    lines.append("|" + "---|" * (len(table.columns) + 1))
    for line in rows_of(table, data):
        cells = [cell(c, line, i, data, results) for i, c in enumerate(table.columns)]
        lines.append("| " + " | ".join([line.label, *cells]) + " |")
    return "\n".join(lines)


def render_headline(headline: Headline, results: Path = RESULTS) -> str:
    """A headline's one line: its template filled from the JSON, with the run's date."""
    data = load(headline.source, results)
    values = {
        name: fmt(lookup(data, split_path(path)), spec) for name, (path, spec) in headline.values.items()
    }
    missing = [n for n, v in values.items() if v == ""]
    if missing:
        raise SystemExit(f"headline {headline.name}: {headline.source} has no value for {missing}")
    return headline.text.format(**values, date=run_date(data, headline.source))


def _block(kind: str, name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- {kind}:{re.escape(name)} -->\n)(.*?)(<!-- /{kind}:{re.escape(name)} -->)", re.S
    )


def _pages(root: Path) -> dict[str, str]:
    pages = {t.page for t in TABLES} | {h.page for h in HEADLINES}
    return {p: (root / p).read_text(encoding="utf-8") for p in sorted(pages)}


def update(root: Path = ROOT, results: Path = RESULTS, write: bool = True) -> list[Stale]:
    """Render every table and headline into its page; the ones that differed (written unless `write`
    is False). A spec whose markers are missing from its page is reported too, never skipped."""
    texts = _pages(root)
    stale: list[Stale] = []
    specs: list[tuple[str, Table | Headline]] = [("table", t) for t in TABLES]
    specs += [("headline", h) for h in HEADLINES]
    for kind, spec in specs:
        pattern = _block(kind, spec.name)
        text = texts[spec.page]
        found = pattern.search(text)
        if found is None:
            stale.append(Stale(kind, spec.name, spec.page, f"no <!-- {kind}:{spec.name} --> markers"))
            continue
        rendered = render_table(spec, results) if isinstance(spec, Table) else render_headline(spec, results)
        body = rendered + "\n"
        if found.group(2) != body:
            stale.append(Stale(kind, spec.name, spec.page, f"differs from bench/results/{spec.source}"))
            texts[spec.page] = text[: found.start(2)] + body + text[found.end(2) :]
    if write:
        for page, text in texts.items():
            if any(s.page == page and "markers" not in s.reason for s in stale):
                (root / page).write_text(text, encoding="utf-8")
    return stale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 when a page is stale")
    args = ap.parse_args()
    stale = update(write=not args.check)
    for s in stale:
        done = "" if args.check or "markers" in s.reason else " (rewritten)"
        print(f"{s.page}: {s.kind} {s.name}: {s.reason}{done}", file=sys.stderr)
    missing = [s for s in stale if "markers" in s.reason]
    if (args.check and stale) or missing:
        raise SystemExit(1)
    print(
        f"{len(TABLES)} tables and {len(HEADLINES)} headlines: {len(stale)} rewritten"
        if stale
        else "up to date"
    )


if __name__ == "__main__":
    main()
