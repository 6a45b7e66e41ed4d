"""Citations in a generated answer: which labels it cites, which do not exist, which sentences cite none.

The `ask` prompt numbers the sources (`[1] report.pdf p.4`) and asks for a label after each claim.
After generation the answer is checked here: `[2]`, `[1, 3]`, `[1][3]` and `[1-3]` are read as
labels; a label with no source behind it is flagged as invalid; a sentence that makes a claim
without any label is listed as uncited. A refusal ("Insufficient information") claims nothing, so
it needs no label.

Example:
    >>> c = check_citations("Revenue grew 14.3% [1]. Margins fell [7]. Costs rose.", {1, 2})
    >>> c.cited, c.invalid, c.uncited_sentences
    ([1], [7], ['Costs rose.'])
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass, field

INSUFFICIENT = "Insufficient information"

LABEL = re.compile(r"\[\s*(\d+(?:\s*(?:,|-|–)\s*\d+)*)\s*\]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)|\n+")


@dataclass
class Citations:
    """What an answer cites.

    Attributes:
        cited: Existing labels, in order of first mention.
        invalid: Labels the answer cites that no source has, in order of first mention.
        uncited_sentences: Sentences with a claim and no label (refusals are not claims).
    """

    cited: list[int] = field(default_factory=list)
    invalid: list[int] = field(default_factory=list)
    uncited_sentences: list[str] = field(default_factory=list)


def labels_in(text: str) -> list[int]:
    """Every label the text cites, in order, repeats kept (`[1-3]` is 1, 2, 3)."""
    out: list[int] = []
    for group in LABEL.findall(text):
        for part in group.split(","):
            ends = [int(n) for n in re.split(r"\s*[-–]\s*", part.strip())]
            if len(ends) == 2 and 0 < ends[1] - ends[0] < 50:
                out.extend(range(ends[0], ends[1] + 1))
            else:
                out.extend(ends)
    return out


def sentences(text: str) -> list[str]:
    """The answer's sentences; a sentence that is only labels (`... grew. [1]`) joins the one before."""
    out: list[str] = []
    for part in _SENTENCE_END.split(text.strip()):
        part = part.strip()
        if not part:
            continue
        if out and not LABEL.sub("", part).strip(" .,;:"):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return out


def is_refusal(sentence: str) -> bool:
    return INSUFFICIENT.lower() in sentence.lower()


def check_citations(text: str, labels: Collection[int]) -> Citations:
    """Parse the labels of an answer against the labels its sources have."""
    valid = set(labels)
    found = labels_in(text)
    uncited = [
        s for s in sentences(text) if not LABEL.search(s) and not is_refusal(s) and re.search(r"\w", s)
    ]
    return Citations(
        cited=list(dict.fromkeys(n for n in found if n in valid)),
        invalid=list(dict.fromkeys(n for n in found if n not in valid)),
        uncited_sentences=uncited,
    )


def source_uri(
    path: str, page: int | None = None, t_start: float | None = None, t_end: float | None = None
) -> str:
    """A link to a source: `file:///.../report.pdf#page=4` (one-based, what PDF viewers read) or
    `file:///.../talk.mp4#t=12.0,22.0` (a media fragment: the clip's time range)."""
    from pathlib import Path

    uri = Path(path).expanduser().resolve().as_uri()
    if page is not None:
        return f"{uri}#page={page + 1}"
    if t_start is not None:
        return f"{uri}#t={t_start:g},{(t_end if t_end is not None else t_start):g}"
    return uri


__all__ = [
    "INSUFFICIENT",
    "LABEL",
    "Citations",
    "check_citations",
    "is_refusal",
    "labels_in",
    "sentences",
    "source_uri",
]
