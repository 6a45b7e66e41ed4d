"""The code blocks of the README and docs/, and the folder they run in (used by test_docs_snippets.py).

Conventions the docs follow:

- Every `bash` and `python` block runs, in file order, unless the line before its fence is
  `<!-- not run: REASON -->` (the reason is required: needs a GPU, needs the model hub, takes an
  hour, needs a Qdrant server, starts a server that runs until stopped, ...).
- `toml` blocks are config files: each one must load through `MMRAGConfig.load`.
- Other blocks (`text`, plain fences, `yaml`) are output or data and are not run.

The blocks run where the README's quick start runs: the current folder holds `./idx` (the sample
index the quick start builds, once per session) and `../shared/data` is the sample data. `pip install`
steps are checked rather than applied: `pip install --dry-run --no-index --no-build-isolation`, from
the checkout, fails when the step would need anything that is not installed, and it neither changes
the environment the tests run in nor reaches the network.
"""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").rglob("*.md") if "hooks" not in p.parts)]
SHELL = {"bash", "sh", "shell", "console"}
PYTHON = {"python", "py", "python3"}
NOT_RUN = re.compile(r"^<!-- not run: (.+?) -->$")
FENCE = re.compile(r"^( *)```\s*([\w+-]*)[^`]*$")

# `pip install` checks what it would do instead of doing it (see the module docstring).
PRELUDE = """
pip() {
  if [ "$1" = install ]; then
    shift
    (cd "$MMRAG_DOCS_REPO" && python -m pip install --dry-run --no-index --no-build-isolation -q "$@")
  else
    command pip "$@"
  fi
}
"""


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: Path
    line: int
    """One-based line of the opening fence."""
    lang: str
    code: str
    skip: str | None
    """The reason given with `<!-- not run: ... -->`, or None when the block runs."""

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """Every fenced block of a Markdown page, with the `not run` reason written above it."""
    lines = page.read_text(encoding="utf-8").splitlines()
    out: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2).lower()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].rstrip() == f"{indent}```"), None)
        if end is None:
            raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: a code fence is never closed")
        body = "\n".join(ln[len(indent) :] for ln in lines[i + 1 : end])
        before = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        note = NOT_RUN.match(before)
        out.append(Block(page, i + 1, lang, body + "\n", note.group(1) if note else None))
        i = end + 1
    return out


def all_blocks(langs: set[str]) -> list[Block]:
    return [b for page in PAGES for b in blocks(page) if b.lang in langs]


def quick_start() -> Block:
    """The README's first shell block: install, index the sample, ask with sources."""
    return next(b for b in blocks(ROOT / "README.md") if b.lang in SHELL)


def work_folder(root: Path, shared_data: Path) -> Path:
    """`root/work`, with `../shared/data` beside it leading to the sample data."""
    (root / "shared").mkdir(parents=True, exist_ok=True)
    link = root / "shared" / "data"
    if not link.exists():
        link.symlink_to(shared_data, target_is_directory=True)
    work = root / "work"
    work.mkdir(exist_ok=True)
    return work


def run_shell(block: Block, work: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """A shell block in bash (`-e -o pipefail`), in `work`, with the offline environment; a block still
    running after `timeout` seconds fails (a docs block that needs longer is marked not run)."""
    env = {**os.environ, "MMRAG_DOCS_REPO": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    env.pop("MMRAG_INDEX", None)  # the blocks name their index
    cmd = ["bash", "-e", "-o", "pipefail", "-c", PRELUDE + block.code]
    # input="": the block reads no terminal (a command that waits for one would hang the test)
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout, input="")
