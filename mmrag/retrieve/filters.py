"""Metadata filters read from a question: the source names and publication dates a corpus carries.

A news question such as "Did TechCrunch's November 6, 2023 article ... and The Age's report of
October 22, 2023 ..." names its sources and dates. When the indexed records carry `source` and
`published_at` fields (the MultiHop-RAG corpus does; `published_date` is derived at ingest), those
names become keyword filters: `source` is one of the named ones, `published_date` one of the named
days (each +-1 day, because a timestamp's UTC day can differ from the day the question names).

Only values that exist in the index are ever matched, so a question naming nothing the corpus
knows gets no filter. Source names match case-sensitively as written in the corpus (a proper noun:
"Fortune" the magazine, not "fortune"), with or without a leading "The" and with the part after
" - " or " | " optional ("The Independent - Sports" is also "The Independent").

A question that attributes its facts to a publication the index has no record from ("an article by
The Hollywood Reporter", "according to Bloomberg") gets that name in `QueryFilters.unindexed`, and
`mmrag.answer` says the sources cannot answer rather than answer from another publication's article.
`attributions` reads the names (MultiHop-RAG dev: it flags 30 of 35 null queries and none of the
214 answerable ones).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from mmrag.ingest.periods import find_days

SOURCE_FIELD = "source"
DATE_FIELD = "published_date"


@dataclass
class QueryFilters:
    """What a question names that the index can filter on."""

    sources: list[str] = field(default_factory=list)
    """Stored `source` values the question names."""
    dates: list[str] = field(default_factory=list)
    """Days the question names, `YYYY-MM-DD`."""
    unindexed: list[str] = field(default_factory=list)
    """Publications the question attributes something to that no indexed record comes from."""

    def match(self, slack_days: int = 1) -> dict[str, list[str]]:
        """Keyword conditions for `SearchFilter.match` (each named day widened by `slack_days`)."""
        out: dict[str, list[str]] = {}
        if self.sources:
            out[SOURCE_FIELD] = sorted(set(self.sources))
        if self.dates:
            days: set[str] = set()
            for d in self.dates:
                day = dt.date.fromisoformat(d)
                days.update(str(day + dt.timedelta(days=i)) for i in range(-slack_days, slack_days + 1))
            out[DATE_FIELD] = sorted(days)
        return out

    def __bool__(self) -> bool:
        return bool(self.sources or self.dates)


def source_aliases(values: Iterable[str]) -> dict[str, set[str]]:
    """Surface forms -> the stored source values they stand for."""
    out: dict[str, set[str]] = {}
    for value in values:
        value = value.strip()
        if not value:
            continue
        forms = {value, re.split(r"\s+[-|]\s+", value)[0].strip()}
        for f in list(forms):
            if f.lower().startswith("the ") and len(f) > 6:
                forms.add(f[4:])
        for f in forms:
            if len(f) >= 3:
                out.setdefault(f, set()).add(value)
    return out


def _alias_pattern(aliases: Iterable[str]) -> re.Pattern[str] | None:
    forms = sorted(aliases, key=len, reverse=True)  # longest first: "The Independent - Sports" wins
    if not forms:
        return None
    return re.compile(r"(?<![\w])(?:" + "|".join(re.escape(f) for f in forms) + r")(?![\w])")


_NAME = r"((?:The\s+)?[A-Z][\w&.-]*(?:\s+(?:of\s+|&\s+)?[A-Z][\w&.-]*)*)"
_KIND = r"(?:article|report|piece|coverage|story|publication|review|post|feature|op-ed|investigation)s?"
_ATTRIBUTIONS = tuple(
    re.compile(p)
    for p in (
        rf"\b{_KIND}\s+(?:by|from|in)\s+{_NAME}",  # an article by X, a report from X, a piece in X
        rf"\b(?:another|one|a\s+second|a\s+separate\s+\w+|the\s+other)\s+(?:by|from|in)\s+{_NAME}",
        rf"\b[Aa]ccording\s+to\s+(?:an?\s+{_KIND}\s+(?:by|from|in)\s+)?{_NAME}\b(?!['’]s)",
        rf"\b(?:a|an|the)\s+{_NAME}\s+{_KIND}\b",  # a Bloomberg report
        rf"{_NAME}['’]s\s+{_KIND}\b",  # Bloomberg's report
        r"\b(?:reported|provided|mentioned|discussed|noted|stated|highlighted|published|covered|detailed)"
        rf"\s+by\s+{_NAME}",
    )
)
_WHEN = re.compile(
    r"(?:January|February|March|April|May|June|July|August|September|October|November|December"
    r"|Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Monday|Tuesday|Wednesday|Thursday|Friday"
    r"|Saturday|Sunday|Q[1-4]|H[12]|FY\d*|\d+)\b\.?"
)
"""A period, not a publication: "a report from October", "the article in Q3"."""
_QUOTED = re.compile(r"(?<!\w)['‘\"“][^'’\"”]+['’\"”](?!\w)")


def attributions(question: str, known: re.Pattern[str] | None = None) -> list[str]:
    """Names the question attributes facts to (`an article by X`, `according to X`, `X's report`,
    `as reported by X`), in order, each once; quoted titles are skipped, and so are spans `known`
    matches (the index's own source names, which may hold words such as "and")."""
    text = _QUOTED.sub(" ", question)
    if known is not None:
        text = known.sub("§", text)
    found: list[tuple[int, str]] = []
    for pattern in _ATTRIBUTIONS:
        for m in pattern.finditer(text):
            name = m.group(1).rstrip(".")
            if len(name) < 2 or name in ("The", "This", "That", "These", "Both") or _WHEN.match(name):
                continue
            found.append((m.start(1), name))
    return list(dict.fromkeys(n for _, n in sorted(found)))


find_dates = find_days
"""Calendar days written in a question (`ingest.periods.find_days`: the same reader as documents)."""


class FilterReader:
    """Reads `QueryFilters` from questions, knowing which sources and whether dates an index holds.

    Args:
        sources: Distinct `source` values in the index.
        has_dates: Whether indexed points carry `published_date`.
    """

    def __init__(self, sources: Iterable[str], has_dates: bool) -> None:
        self.aliases = source_aliases(sources)
        self._pattern = _alias_pattern(self.aliases)
        self._bare = {re.sub(r"^the\s+", "", a.lower()) for a in self.aliases}  # "the age" is "age"
        self.has_dates = has_dates

    @classmethod
    def from_payloads(cls, payloads: Iterable[dict[str, object]]) -> FilterReader:
        """Collect the vocabulary from stored payloads (one scroll over the index)."""
        sources: set[str] = set()
        has_dates = False
        for p in payloads:
            s = p.get(SOURCE_FIELD)
            if isinstance(s, str):
                sources.add(s)
            has_dates = has_dates or isinstance(p.get(DATE_FIELD), str)
        return cls(sources, has_dates)

    def read(self, question: str) -> QueryFilters:
        """The sources and dates `question` names (empty when the index carries neither)."""
        qf = QueryFilters()
        if self._pattern is not None:
            for m in self._pattern.finditer(question):
                for value in sorted(self.aliases[m.group(0)]):
                    if value not in qf.sources:
                        qf.sources.append(value)
        if self.has_dates:
            qf.dates = find_dates(question)
        if self.aliases:
            qf.unindexed = self.unindexed(question)
        return qf

    def unindexed(self, question: str) -> list[str]:
        """Publications `question` attributes facts to that no indexed record comes from."""
        out = []
        for name in attributions(question, self._pattern):
            bare = re.sub(r"^the\s+", "", name.lower())
            # "BBC" is short for an indexed "BBC News": known
            if not any(k == bare or k.startswith(bare + " ") for k in self._bare):
                out.append(name)
        return out
