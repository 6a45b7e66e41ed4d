"""`mmrag models ...`: the model registry."""

from __future__ import annotations

import typer

from mmrag.cli.common import print_json, stdout_console
from mmrag.cli.options import JsonOpt, RoleOpt

app = typer.Typer(help="Registered models (descriptions as data).", no_args_is_help=True)


@app.command("ls")
def ls(
    role: RoleOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered models: id, family, roles, dim, license, and whether it loads offline."""
    from mmrag.registry import list_models

    models = [m for m in list_models() if role is None or role in m.roles]
    if json_out:
        print_json([m.to_dict() for m in models])
        return
    from rich.table import Table

    table = Table()
    for col in ("id", "family", "roles", "dim", "license", "offline", "size"):
        table.add_column(col, overflow="fold")
    for m in models:
        table.add_row(
            m.id,
            m.family,
            ",".join(m.roles),
            str(m.dim or ""),
            m.license,
            "yes" if m.available() else "",
            f"{m.size_mb} MB" if m.size_mb else "",
        )
    stdout_console().print(table)
