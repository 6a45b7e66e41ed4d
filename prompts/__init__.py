"""Prompt templates as data: one `.txt` file per task, with model-family variants, overridable by the user.

A template is the text of the user's turn; the model's chat template (via the tokenizer or
processor) wraps it, so these files never contain role markers. Placeholders use `str.format`
syntax (`{question}`, `{context}`).

Lookup for `load_prompt("vqa", family="bridge")`, first hit wins:
`<override dir>/vqa.bridge.txt`, `<override dir>/vqa.txt`, then the same two names in this folder.
The override dir is the `prompt_dir` argument or `$MMRAG_PROMPTS`.

Example:
    >>> render_prompt("vqa", question="What colour is the car?")
    'What colour is the car?\\nAnswer with a single word or phrase.'
"""

from __future__ import annotations

import os
import string
from pathlib import Path

from mmrag.types import MMRAGError

PROMPTS_DIR = Path(__file__).resolve().parent


def _folders(prompt_dir: str | Path | None) -> list[Path]:
    user = prompt_dir or os.environ.get("MMRAG_PROMPTS")
    return [Path(user), PROMPTS_DIR] if user else [PROMPTS_DIR]


def list_prompts() -> list[str]:
    """Names of the packaged templates (`caption`, `vqa`, `ask`, ... and `task.family` variants)."""
    return sorted(p.stem for p in PROMPTS_DIR.glob("*.txt"))


def load_prompt(name: str, family: str | None = None, prompt_dir: str | Path | None = None) -> str:
    """The template text for a task, preferring the family's variant and the user's folder.

    Raises:
        MMRAGError: No file holds a template of that name.
    """
    names = ([f"{name}.{family}.txt"] if family else []) + [f"{name}.txt"]
    for folder in _folders(prompt_dir):
        for file in names:
            path = folder / file
            if path.is_file():
                return path.read_text(encoding="utf-8").strip()
    raise MMRAGError(
        f"no prompt template {name!r} (looked for {', '.join(names)}; packaged: {list_prompts()})"
    )


def render_prompt(
    name: str, family: str | None = None, prompt_dir: str | Path | None = None, **values: str
) -> str:
    """Load a template and fill its placeholders; a missing value is an error naming it."""
    template = load_prompt(name, family, prompt_dir)
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f}
    missing = fields - set(values)
    if missing:
        raise MMRAGError(f"prompt {name!r} needs {', '.join(sorted(missing))}")
    return template.format(**values)
