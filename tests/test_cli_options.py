"""Every CLI option is declared once: one flag reads the same (help, type, aliases, env) in every command.

The options live in `mmrag/cli/options.py`; the command modules only import them. These tests walk the
command tree Typer builds, read the command modules with `ast`, and run a few cheap commands.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mmrag.cli import app

CLI_DIR = Path(__file__).resolve().parents[1] / "mmrag" / "cli"
WIDE = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1"}


def _commands(group: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """(command path, command) for every leaf command under a click/Typer group."""
    for name, cmd in sorted(getattr(group, "commands", {}).items()):
        if getattr(cmd, "commands", None) is not None:
            yield from _commands(cmd, (*path, name))
        else:
            yield (*path, name), cmd


def _options(cmd: Any) -> list[Any]:
    return [p for p in cmd.params if getattr(p, "param_type_name", "") == "option"]


def _type_name(param: Any) -> str:
    """The option's value type, whichever click Typer runs on (classic click, or Typer's own)."""
    if hasattr(param, "bare_type"):
        kind = param.bare_type()
    else:
        kind = getattr(param.type, "name", repr(param.type))
    return f"{kind}{'*' if param.multiple else ''}{' flag' if param.is_flag else ''}"


def _signature(param: Any) -> tuple[Any, ...]:
    """What must agree wherever a flag appears: help, type, every spelling, environment variable."""
    flags = tuple(sorted(param.opts + param.secondary_opts))
    return (param.help, _type_name(param), flags, param.envvar)


def _inconsistent(root: Any) -> dict[str, dict[tuple[Any, ...], list[str]]]:
    """Flag -> {signature: commands} for every flag declared with more than one signature."""
    seen: dict[str, dict[tuple[Any, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, cmd in _commands(root):
        for param in _options(cmd):
            for flag in param.opts + param.secondary_opts:
                seen[flag][_signature(param)].append(" ".join(path))
    return {flag: dict(sigs) for flag, sigs in seen.items() if len(sigs) > 1}


def test_every_option_reads_the_same_in_every_command() -> None:
    root = typer.main.get_command(app)
    commands = dict(_commands(root))
    assert len(commands) >= 15 and ("eval", "multihop") in commands and ("models", "ls") in commands
    assert _inconsistent(root) == {}
    # the flags the issue named, still shared (so the check above compared something)
    counts: dict[str, int] = defaultdict(int)
    for cmd in commands.values():
        for param in _options(cmd):
            for flag in param.opts + param.secondary_opts:
                counts[flag] += 1
    shared = {"--generator": 4, "--no-quant": 3, "--max-new-tokens": 3, "-k": 3, "--runs": 5, "--bench": 5}
    assert {flag: counts[flag] >= n for flag, n in shared.items()} == dict.fromkeys(shared, True), counts


def test_the_consistency_check_catches_a_drifted_option() -> None:
    toy = typer.Typer()

    @toy.command("one")
    def one(k: int = typer.Option(5, "-k", help="Hits.")) -> None:  # noqa: B008
        """One."""

    @toy.command("two")
    def two(k: int = typer.Option(5, "-k", help="Hits to return.")) -> None:  # noqa: B008
        """Two."""

    drifted = _inconsistent(typer.main.get_command(toy))
    assert set(drifted) == {"-k"} and sorted(c for cs in drifted["-k"].values() for c in cs) == ["one", "two"]


def _option_calls(source: str) -> list[int]:
    """Lines that call `typer.Option(...)` (or `Option(...)` imported from typer)."""
    tree = ast.parse(source)
    bare = {
        a.asname or a.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module == "typer"
        for a in node.names
        if a.name == "Option"
    }
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Attribute) and f.attr == "Option" and isinstance(f.value, ast.Name):
            if f.value.id == "typer":
                lines.append(node.lineno)
        elif isinstance(f, ast.Name) and f.id in bare:
            lines.append(node.lineno)
    return lines


def test_only_options_py_declares_options() -> None:
    modules = sorted(CLI_DIR.glob("*.py"))
    assert {"options.py", "ask.py", "eval.py", "search.py"} <= {m.name for m in modules}
    offenders = {
        m.name: lines
        for m in modules
        if m.name != "options.py" and (lines := _option_calls(m.read_text(encoding="utf-8")))
    }
    assert offenders == {}
    assert _option_calls((CLI_DIR / "options.py").read_text(encoding="utf-8"))
    assert _option_calls("import typer\nx = typer.Option('--x')\n") == [2]
    assert _option_calls("from typer import Option as O\nx = O('--x')\n") == [2]


def test_every_profile_option_reads_mmrag_profile() -> None:
    root = typer.main.get_command(app)
    with_profile = {
        " ".join(path): p.envvar
        for path, cmd in _commands(root)
        for p in _options(cmd)
        if "--profile" in p.opts
    }
    assert {"index", "eval financebench", "eval clip8"} <= set(with_profile)
    assert set(with_profile.values()) == {"MMRAG_PROFILE"}


def test_index_takes_its_profile_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mmrag.cli.index as index_cmd

    seen: list[str | None] = []

    def fake_open(index: Path, profile: str | None, *args: Any, **kw: Any) -> Any:
        seen.append(profile)
        raise typer.Exit(0)

    monkeypatch.setattr(index_cmd, "open_pipeline", fake_open)
    monkeypatch.delenv("MMRAG_PROFILE", raising=False)
    args = ["index", str(tmp_path), "--index", str(tmp_path / "idx")]
    runner = CliRunner()
    assert runner.invoke(app, args, env={"MMRAG_PROFILE": "offline"}).exit_code == 0
    assert runner.invoke(app, args).exit_code == 0
    assert runner.invoke(app, [*args, "-p", "default"], env={"MMRAG_PROFILE": "offline"}).exit_code == 0
    assert seen == ["offline", None, "default"]


def test_an_unknown_profile_from_the_environment_is_refused(tmp_path: Path) -> None:
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.txt").write_text("nothing to see")
    args = ["index", str(tmp_path / "c"), "--index", str(tmp_path / "idx"), "--no-progress"]
    r = CliRunner().invoke(app, args, env={"MMRAG_PROFILE": "bogus"})
    assert r.exit_code == 2 and "unknown profile" in r.stderr


@pytest.mark.parametrize("suite", ["clip8", "financebench"])
def test_eval_suites_take_their_profile_from_the_environment(
    suite: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    module = importlib.import_module(f"mmrag.evals.{suite}")
    seen: list[Any] = []

    def fake_evaluate(cfg: Any, **kw: Any) -> dict[str, Any]:
        seen.append(cfg)
        raise typer.Exit(0)

    monkeypatch.setattr(module, "evaluate", fake_evaluate)
    monkeypatch.delenv("MMRAG_PROFILE", raising=False)
    runner = CliRunner()
    base = ["eval", suite, "--runs", str(tmp_path)]
    assert runner.invoke(app, base, env={"MMRAG_PROFILE": "default"}).exit_code == 0
    assert runner.invoke(app, base).exit_code == 0
    assert [c.profile for c in seen] == ["default", "offline"]
    if suite == "financebench":
        r = runner.invoke(app, [*base, "--configs", "bm25", "--configs", "hybrid"])
        assert r.exit_code == 0, r.output
        assert seen[-1].configs == ["bm25", "hybrid"]
        assert runner.invoke(app, [*base, "-c", "bm25"]).exit_code == 2  # -c is a TOML file, not here


@pytest.mark.parametrize("suite", ["multihop", "financebench"])
def test_eval_help_lists_configs(suite: str) -> None:
    r = CliRunner().invoke(app, ["eval", suite, "--help"], env=WIDE)
    assert r.exit_code == 0, r.output
    assert "--configs" in r.output
    cmd = typer.main.get_command(app).commands["eval"].commands[suite]
    flags = {f for p in _options(cmd) for f in p.opts + p.secondary_opts}
    assert "--configs" in flags and not {"--config", "-c"} & flags


def test_every_command_renders_its_help() -> None:
    runner = CliRunner()
    r = runner.invoke(app, ["--help"], env=WIDE)
    assert r.exit_code == 0 and "eval" in r.output
    for path, _ in _commands(typer.main.get_command(app)):
        r = runner.invoke(app, [*path, "--help"], env=WIDE)
        assert r.exit_code == 0 and "Usage" in r.output, (path, r.output)


def test_questions_must_be_a_number_where_it_counts(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["eval", "easy-vqa", "--questions", "many", "--runs", str(tmp_path)])
    assert r.exit_code == 2 and "--questions takes a number" in " ".join(r.stderr.split())
