"""mkdocs hook: the configuration reference, rendered at build time from the code that declares it.

A page holding `<!-- generated: cli-options -->` gets, in its place, one table per help panel of
every command-line option, read from the Typer app that `mmrag/cli/options.py` and
`mmrag/cli/options_eval.py` declare the options for (flags, environment variable, the commands that
take it, its help text). `<!-- generated: config-fields -->` becomes one table per section of
`MMRAGConfig` (`mmrag/config.py`): the TOML key, the `MMRAG_*` variable, the `default` and `offline`
profiles' values, and the field's docstring. An option or field added to the code appears at the
next `mkdocs build` with nothing to regenerate by hand; `tests/test_docs_site.py` checks that every
option and field is on the built page.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import textwrap
from collections import defaultdict
from typing import Any

MARKERS = {
    "<!-- generated: cli-options -->": "render_options",
    "<!-- generated: config-fields -->": "render_config",
}
TOP_LEVEL_ENV = {"index": "MMRAG_INDEX", "profile": "MMRAG_PROFILE"}


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """mkdocs' hook: replace each marker with what it stands for."""
    for marker, name in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, globals()[name]())
    return markdown


def cell(text: Any) -> str:
    """Text safe inside a Markdown table cell: one line, no bare `|`, `<` or `>`."""
    parts = " ".join(str(text).split()).replace("|", "\\|").split("`")
    # outside code spans `<file>` would read as an HTML tag; inside them the text shows as written
    return "`".join(p if i % 2 else p.replace("<", "&lt;").replace(">", "&gt;") for i, p in enumerate(parts))


def _commands(group: Any, path: tuple[str, ...] = ()) -> list[tuple[str, Any]]:
    """("mmrag eval multihop", command) for every leaf command under a click group, sorted."""
    out: list[tuple[str, Any]] = []
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        if getattr(cmd, "commands", None) is not None:
            out += _commands(cmd, (*path, name))
        else:
            out.append((" ".join(("mmrag", *path, name)), cmd))
    return out


def cli_options() -> dict[str, dict[str, Any]]:
    """Every option of the `mmrag` command line, keyed by its flags as shown ("--rerank",
    "--quant / --no-quant"): its help text, environment variable, help panel and commands."""
    import typer

    from mmrag.cli import app

    found: dict[str, dict[str, Any]] = {}
    for command, cmd in _commands(typer.main.get_command(app)):
        for param in cmd.params:
            if getattr(param, "param_type_name", "") != "option" or param.hidden:
                continue
            flags = " / ".join(
                ", ".join(f"`{f}`" for f in group) for group in (param.opts, param.secondary_opts) if group
            )
            entry = found.setdefault(
                flags,
                {
                    "help": param.help or "",
                    "envvar": param.envvar,
                    "panel": getattr(param, "rich_help_panel", None) or "General",
                    "commands": [],
                },
            )
            entry["commands"].append(command)
    return found


def render_options() -> str:
    """The command-line options as Markdown: a table per help panel, flags in alphabetical order."""
    panels: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for flags, entry in cli_options().items():
        panels[entry["panel"]].append((flags, entry))
    out: list[str] = []
    for panel in sorted(panels, key=lambda p: (p == "General", p)):
        out += [
            f"### {panel} options",
            "",
            "| option | environment | commands | what it does |",
            "|---|---|---|---|",
        ]
        for flags, e in sorted(panels[panel], key=lambda item: item[0].replace("`", "").lstrip("-").lower()):
            env = f"`{e['envvar']}`" if e["envvar"] else ""
            commands = ", ".join(c.removeprefix("mmrag ") for c in e["commands"])
            out.append(f"| {flags} | {env} | {cell(commands)} | {cell(e['help'])} |")
        out.append("")
    return "\n".join(out)


def field_docs(cls: type) -> dict[str, str]:
    """A dataclass's attribute docstrings (the string literal under each field), read from its source."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs: dict[str, str] = {}
    for node, after in zip(body, body[1:], strict=False):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(after, ast.Expr)
            and isinstance(after.value, ast.Constant)
            and isinstance(after.value.value, str)
        ):
            docs[node.target.id] = inspect.cleandoc(after.value.value)
    return docs


def _value(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'`"{value}"`'
    return f"`{value}`"


def config_sections() -> dict[str, tuple[type, list[dataclasses.Field[Any]]]]:
    """ "" (the top-level keys) and each section of `MMRAGConfig`, with its dataclass and fields."""
    from mmrag.config import MMRAGConfig

    out: dict[str, tuple[type, list[dataclasses.Field[Any]]]] = {"": (MMRAGConfig, [])}
    for f in dataclasses.fields(MMRAGConfig):
        kind = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if kind is not None and dataclasses.is_dataclass(kind):
            out[f.name] = (kind, list(dataclasses.fields(kind)))
        else:
            out[""][1].append(f)
    return out


def render_config() -> str:
    """Every config field as Markdown: a table per section (`[ingest]`, ...), in declaration order."""
    from mmrag.config import MMRAGConfig
    from mmrag.config_sources import ENV_ALIASES, env_name

    aliases = {field: var for var, field in ENV_ALIASES.items()}
    profiles = {p: MMRAGConfig.from_profile(p) for p in ("default", "offline")}
    out: list[str] = []
    for section, (cls, fields) in config_sections().items():
        docs = field_docs(cls)
        title = f"### `[{section}]`" if section else "### Top level"
        summary = inspect.cleandoc(cls.__doc__ or "").split("\n\n")[0]
        out += [title, "", cell(summary), "", "| key | environment | default | offline | what it sets |"]
        out.append("|---|---|---|---|---|")
        for f in fields:
            if section:
                env = aliases.get((section, f.name)) or env_name(section, f.name)
                values = [getattr(getattr(p, section), f.name) for p in profiles.values()]
            else:
                env = TOP_LEVEL_ENV.get(f.name, "")
                values = [getattr(p, f.name) for p in profiles.values()]
            shown = [_value(v) for v in values]
            offline = shown[1] if shown[1] != shown[0] else "same"
            row = [f"`{f.name}`", f"`{env}`" if env else "", cell(shown[0]), cell(offline)]
            out.append("| " + " | ".join([*row, cell(docs.get(f.name, ""))]) + " |")
        out.append("")
    return "\n".join(out)
