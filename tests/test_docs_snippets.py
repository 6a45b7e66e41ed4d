"""Every code block of the README and docs/ runs (or says why not), against the sample data, offline.

Python blocks run under pytest-examples, shell blocks in bash, TOML blocks through `MMRAGConfig.load`;
`tests/docs_blocks.py` says where they run and how a block is marked as not run. The sample index the
README's quick start builds is built once per session, by running that block, and every later block
reads it as `./idx`. A block that fails is a failing test.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

examples = pytest.importorskip(
    "pytest_examples", reason="the docs' Python blocks run under pytest-examples (dev extra)"
)

sys.path.insert(0, str(Path(__file__).parent))
from docs_blocks import (  # noqa: E402
    PAGES,
    PYTHON,
    ROOT,
    SHELL,
    Block,
    all_blocks,
    blocks,
    quick_start,
    run_shell,
    work_folder,
)

SHELL_BLOCKS = all_blocks(SHELL)
PYTHON_BLOCKS = all_blocks(PYTHON)
EXAMPLES = list(examples.find_examples(*PAGES))
"""The Python blocks as pytest-examples reads them (it runs them)."""
TOML_BLOCKS = all_blocks({"toml"})
QUICK_START = quick_start()

if TYPE_CHECKING:
    from pytest_examples import CodeExample, EvalExample


def _params(found: list[Block]) -> list[Any]:
    return [
        pytest.param(b, id=b.id, marks=[pytest.mark.skip(reason=f"not run: {b.skip}")] if b.skip else [])
        for b in found
    ]


@pytest.fixture(scope="session")
def docs_work(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> Path:
    """The folder the blocks run in, with `./idx` built by the README's quick start."""
    work = work_folder(tmp_path_factory.mktemp("docs"), shared_data)
    done = run_shell(QUICK_START, work, timeout=900)
    assert done.returncode == 0, f"the README's quick start failed:\n{done.stdout}\n{done.stderr}"
    (work / "quick-start.out").write_text(done.stdout + done.stderr, encoding="utf-8")
    return work


def test_the_docs_have_blocks_and_every_skip_says_why() -> None:
    """The inventory the other tests run: found at all, and every block left out names its reason."""
    assert {p.relative_to(ROOT).as_posix() for p in PAGES} >= {"README.md", "docs/getting-started.md"}
    assert len(SHELL_BLOCKS) >= 20 and len(PYTHON_BLOCKS) >= 5 and TOML_BLOCKS
    assert all(len(b.skip) >= 12 for b in SHELL_BLOCKS + PYTHON_BLOCKS if b.skip), "a reason, not a word"
    assert all(b.skip is None for b in PYTHON_BLOCKS), "every Python block runs"
    assert QUICK_START.skip is None and "mmrag index" in QUICK_START.code and "mmrag ask" in QUICK_START.code


def test_blocks_left_out_as_the_quick_start_are_in_it() -> None:
    """A block not run because "the quick start runs this same command" holds nothing else."""
    same = [b for b in SHELL_BLOCKS if b.skip and "quick start runs this same command" in b.skip]
    assert len(same) >= 3
    steps = {s.strip() for s in QUICK_START.code.split("&&")}
    for b in same:
        assert all(s.strip() in steps for s in b.code.strip().split("&&")), b.id


def test_the_block_finder_reads_markers_and_indented_fences(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text(
        "<!-- not run: needs a GPU for an hour -->\n```bash\nmmrag train\n```\n\n"
        "- a list item:\n\n  ```python\n  print(1)\n  ```\n\n```text\noutput\n```\n"
    )
    found = blocks(page)
    assert [(b.lang, b.line, b.skip) for b in found] == [
        ("bash", 2, "needs a GPU for an hour"),
        ("python", 8, None),
        ("text", 12, None),
    ]
    assert found[1].code == "print(1)\n"


@pytest.mark.slow
def test_quick_start_indexes_the_sample_and_answers_with_sources(docs_work: Path) -> None:
    out = (docs_work / "quick-start.out").read_text(encoding="utf-8")
    assert (docs_work / "idx" / "manifest.json").is_file()
    assert "indexed 33 files" in out and "0 failed" in out, out
    assert "Sources" in out and "PEPSICO_2023Q1_EARNINGS.pdf" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("block", _params([b for b in SHELL_BLOCKS if b != QUICK_START]))
def test_shell_block_runs(block: Block, docs_work: Path) -> None:
    done = run_shell(block, docs_work)
    hint = "(a block that cannot run on the sample data offline gets `<!-- not run: REASON -->` above it)"
    assert done.returncode == 0, (
        f"{block.id} exited {done.returncode} {hint}:\n{block.code}\n{done.stdout}\n{done.stderr}"
    )


def test_pytest_examples_finds_the_same_python_blocks() -> None:
    """Its reader and ours agree, so a Python block is neither run twice nor missed."""
    theirs = sorted((e.path, e.start_line) for e in EXAMPLES)
    assert theirs == sorted((b.page, b.line) for b in PYTHON_BLOCKS)


@pytest.mark.slow
@pytest.mark.parametrize(
    "example", [pytest.param(e, id=f"{e.path.relative_to(ROOT)}:{e.start_line}") for e in EXAMPLES]
)
def test_python_block_runs(
    example: CodeExample, eval_example: EvalExample, docs_work: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(docs_work)
    monkeypatch.delenv("MMRAG_INDEX", raising=False)
    eval_example.run(example)


@pytest.mark.parametrize("block", _params(TOML_BLOCKS))
def test_toml_block_is_a_valid_config(block: Block, tmp_path: Path) -> None:
    from mmrag.config import MMRAGConfig

    path = tmp_path / "mmrag.toml"
    path.write_text(block.code, encoding="utf-8")
    cfg = MMRAGConfig.load(config_file=path, env={})
    assert cfg.to_dict()  # every key was known and typed right, or load raised MMRAGError
