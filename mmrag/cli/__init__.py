"""The `mmrag` command line (Typer). One module per command group; this one mounts them."""

from __future__ import annotations

import typer

from mmrag.cli import ask as _ask
from mmrag.cli import eval as _eval
from mmrag.cli import generate as _generate
from mmrag.cli import index as _index
from mmrag.cli import info as _info
from mmrag.cli import models as _models
from mmrag.cli import search as _search
from mmrag.cli import serve as _serve
from mmrag.cli import transfer as _transfer

app = typer.Typer(
    name="mmrag",
    help="Retrieval-augmented multimodal LLMs: index images, PDFs and videos into Qdrant, search, ask.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.command("index")(_index.index)
app.command("search")(_search.search)
app.command("info")(_info.info)
app.command("ask")(_ask.ask)
app.command("caption")(_generate.caption)
app.command("vqa")(_generate.vqa)
app.command("train-projector")(_generate.train_projector)
app.add_typer(_eval.eval_app, name="eval")
app.command("serve")(_serve.serve)
app.command("export")(_transfer.export_index)
app.command("import")(_transfer.import_index)
app.add_typer(_models.app, name="models")


def main() -> None:
    """Console entry point.

    Quiets the libraries' own chatter for the command line (stderr is for our diagnostics): the
    hub's per-file progress bars, transformers' advisory warnings, and bitsandbytes' warning that an
    optional hub-fetched CPU kernel is missing. Users can set the variables themselves to see them.
    """
    import logging
    import os

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    app()
