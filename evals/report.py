"""`--report`: one self-contained HTML page per eval run, next to `metrics.md`.

The page holds the run's metrics table (rendered from `metrics.md`), every PNG plot of the run folder,
and a few examples with what was retrieved for them (text snippets, and thumbnails of image, page and
video hits). Images are inlined as data URIs, so the file can be mailed or attached to a CI run.
All text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image

    from mmrag.types import Hit

_CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
.ex{border-top:1px solid #ddd;padding:.6em 0}.hit{display:flex;gap:.8em;margin:.35em 0}
.hit img{max-width:160px;max-height:120px;border:1px solid #ccc}.meta{color:#666;font-size:.9em}
.ok{color:#070}.bad{color:#a00}img.plot{max-width:100%}
"""


@dataclass
class Example:
    """One query of the run and what it retrieved."""

    query: str
    hits: Sequence[Hit] = ()
    note: str = ""
    """A line under the query (gold answer, correctness, chosen k, ...)."""
    ok: bool | None = None
    images: list[Image.Image] = field(default_factory=list)
    """Images of the query itself (VQA)."""


def _data_uri(img: Image.Image, px: int = 240) -> str:
    im = img.convert("RGB")
    im.thumbnail((px, px))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode()


def _md_table(markdown: str) -> str:
    """Markdown tables and paragraphs as HTML (just the subset `metrics.md` uses)."""
    out: list[str] = []
    rows: list[list[str]] = []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>")
            out.extend("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in body)
            out.append("</table>")
            rows.clear()

    for line in markdown.splitlines():
        s = line.strip()
        if s.startswith("|"):
            raw = s.strip("|").split("|")
            cells = [html.escape(c.strip().replace("`", "").replace("**", "")) for c in raw]
            if not all(set(c) <= {"-", ":"} for c in cells):
                rows.append(cells)
        else:
            flush()
            if s:
                out.append(f"<p>{html.escape(s.replace('**', '').replace('`', ''))}</p>")
    flush()
    return "\n".join(out)


def _hit_html(hit: Hit) -> str:
    from mmrag.ingest.render import hit_image

    img = ""
    if hit.modality in ("image", "page", "video"):
        try:
            pic = hit_image(hit)
        except Exception:  # a moved or unreadable source file: the report still renders
            pic = None
        if pic is not None:
            img = f'<img src="{_data_uri(pic)}" alt="">'
    where = f"{Path(hit.path).name} {hit.locator()}".strip()
    text = html.escape(" ".join((hit.text or "").split())[:300])
    meta = f'<div class="meta">{hit.score:.3f} · {hit.modality} · {html.escape(where)}</div>'
    return f'<div class="hit">{img}<div>{meta}{text}</div></div>'


def write_report(run: str | Path, title: str, examples: Sequence[Example] = ()) -> Path:
    """Write `run/report.html` from the run's `metrics.md`, its PNG plots and `examples`."""
    run = Path(run)
    md = (run / "metrics.md").read_text(encoding="utf-8") if (run / "metrics.md").exists() else ""
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title><style>{_CSS}</style>"]
    parts.append(f"<h1>{html.escape(title)}</h1><p class='meta'>{html.escape(str(run))}</p>")
    parts.append(_md_table(md))
    for png in sorted(run.glob("*.png")):
        uri = "data:image/png;base64," + base64.b64encode(png.read_bytes()).decode()
        parts.append(f"<h2>{html.escape(png.stem)}</h2><img class='plot' src='{uri}' alt='{png.stem}'>")
    if examples:
        parts.append("<h2>Examples</h2>")
    for ex in examples:
        mark = {None: "", True: "<span class='ok'>✓</span> ", False: "<span class='bad'>✗</span> "}[ex.ok]
        pics = "".join(f'<img src="{_data_uri(im)}" alt="">' for im in ex.images)
        note = f"<div class='meta'>{html.escape(ex.note)}</div>" if ex.note else ""
        hits = "".join(_hit_html(h) for h in ex.hits)
        parts.append(f"<div class='ex'><b>{mark}{html.escape(ex.query)}</b>{note}{pics}{hits}</div>")
    out = run / "report.html"
    out.write_text("\n".join(parts) + "\n", encoding="utf-8")
    return out
