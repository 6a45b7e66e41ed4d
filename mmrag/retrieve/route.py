"""Question-aware routing: the documents, sources and days a question names, matched against the index.

The router knows the index's documents by their metadata (`doc_*` payload fields written at index
time, `mmrag/ingest/meta.py`) and, in record corpora such as news articles, the `source` and
`published_date` fields of the records. From a question it reads:
- entities: any alias of a document ("Best Buy", "BESTBUY", "BBY", "JnJ" for the ticker JNJ), matched
  on capitalised word spans with spaces and punctuation ignored; a ticker also matches case-blind
  when the question writes it with two or more capitals ("JnJ");
- periods and types: "FY2022", "fiscal 22", "Q2 of FY2024", "2022 annual report", "8-K dated July 1,
  2022" (`mmrag/ingest/periods.py`);
- sources and days of record corpora (`mmrag/retrieve/filters.py`).

Documents of the named entities are scored by how well their period and type fit (`period_score`);
those within `PERIOD_SLACK` of the best are routed to. With no entity named, no document is routed
to: a year alone names too many filings.

How the route is used is `search.route`: `filter` restricts the search to the routed documents (and
fills from the unrestricted search when that gives fewer than k hits), `boost` fuses the restricted
and the unrestricted lists so the routed documents rise but others can still appear. When a
question names two or more entities or sources, each gets its own restricted search and their lists
are interleaved, so that a comparison finds evidence about every side.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from mmrag.ingest.periods import TYPE_FAMILY, Periods, find_periods, period_label
from mmrag.retrieve.filters import DATE_FIELD, SOURCE_FIELD, FilterReader

PERIOD_SLACK = 1.0
"""Documents scoring within this of the best period score are all routed to."""
PERIOD_ONLY_MAX = 3
"""A question naming a quarter or a day but no entity routes to the documents that match it
exactly, when there are at most this many."""
MAX_SPAN = 4
"""Longest word span of a question compared with an alias."""
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9&.'’-]*")
_STOP = {"the", "a", "an", "of", "in", "and", "for", "what", "which", "was", "is", "fy", "q"}


def compact(text: str) -> str:
    """Lower-case letters and digits only: "Best Buy's" and "BESTBUY" compare equal."""
    return re.sub(r"[^a-z0-9]", "", re.sub(r"['’]s\b", "", text.lower()))


@dataclass
class Doc:
    """One indexed document's metadata, as the router reads it."""

    path: str
    entity: str | None = None
    aliases: list[str] = field(default_factory=list)
    type: str | None = None
    year: int | None = None
    quarter: int | None = None
    date: str | None = None


def period_score(doc: Doc, p: Periods) -> float:
    """How well `doc`'s period and type fit what the question names (0: not at all).

    3: the named fiscal year of an annual document, the named quarter, or the named day (+-3 days) of
    an event document; 2: a fourth-quarter document for a named year; 1: a quarter of a named year,
    or the named year of an event document; 0.5: a year that an annual document covers as a
    comparative (one or two years back); plus 2 when the question names the document's type.
    """
    family = TYPE_FAMILY.get(doc.type or "")
    s = 0.0
    if doc.date and p.days and family == "event":
        day = dt.date.fromisoformat(doc.date)
        if any(abs((dt.date.fromisoformat(d) - day).days) <= 3 for d in p.days):
            s = 3.0
    if not s and doc.year:
        named_q = {q for y, q in p.quarters if y == doc.year}
        if family == "event":
            s = 1.0 if doc.year in p.years else 0.0
        elif doc.quarter:
            if doc.quarter in named_q:
                s = 3.0
            elif doc.year in p.years and not named_q:
                s = 2.0 if doc.quarter == 4 else 1.0
        elif doc.year in p.years:
            s = 1.0 if named_q else 3.0
        elif {doc.year - 1, doc.year - 2} & p.years:
            s = 0.5
    if doc.type and any(TYPE_FAMILY.get(t, t) == (family or doc.type) for t in p.types):
        s += 2.0
    return s


def _precise(doc: Doc, p: Periods) -> bool:
    """Whether `doc` is of the very quarter, or (an event document) of the very day, `p` names."""
    if doc.quarter and doc.year and (doc.year, doc.quarter) in p.quarters:
        return True
    return TYPE_FAMILY.get(doc.type or "") == "event" and bool(doc.date) and doc.date in p.days


@dataclass
class Route:
    """What a question names that the index knows, and where that sends the search."""

    entities: list[str] = field(default_factory=list)
    """Entities named (as the documents spell them)."""
    groups: list[list[str]] = field(default_factory=list)
    """Routed document paths, one list per named entity."""
    periods: Periods = field(default_factory=Periods)
    match: dict[str, list[str]] = field(default_factory=dict)
    """Record-field conditions (`source`, `published_date`) of record corpora."""
    sources: list[str] = field(default_factory=list)
    unindexed: list[str] = field(default_factory=list)
    """Publications the question attributes facts to that the index has no record from."""

    @property
    def paths(self) -> list[str]:
        return sorted({p for g in self.groups for p in g})

    def __bool__(self) -> bool:
        return bool(self.groups or self.match)

    def record(self) -> dict[str, list[str]]:
        """The route as `Retrieval.filters` records it."""
        out = dict(self.match)
        if self.unindexed:
            out["unindexed_source"] = self.unindexed
        if self.entities:
            out["entity"] = self.entities
        if self.groups:
            out["path"] = self.paths
        bits = sorted(str(y) for y in self.periods.years) + [
            f"{y}Q{q}" for y, q in sorted(self.periods.quarters)
        ]
        if self.groups and (bits or self.periods.days or self.periods.types):
            out["period"] = bits + self.periods.days + self.periods.types
        return out


def doc_label(payload: dict[str, Any]) -> str:
    """A hit's document in a few words, from its `doc_*` payload: "Acme Inc 10-K FY2022" ("" if none)."""
    fields = {k[4:]: v for k, v in payload.items() if k.startswith("doc_")}
    bits = [fields.get("entity"), fields.get("type"), period_label(fields)]
    return " ".join(str(b) for b in bits if b)


def _usable(alias: str) -> str | None:
    c = compact(alias)
    return c if len(c) >= 2 and c not in _STOP and not c.isdigit() else None


def _merge_entities(docs: list[Doc]) -> dict[str, str]:
    """Path -> entity key; documents sharing any alias are one entity ("BLOCK" the file name and
    "Square, Inc." the registrant of the same filing join every Block/Square document)."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for d in docs:
        names = [c for a in [d.entity or "", *d.aliases] if (c := _usable(a))] or [d.path]
        for n in names:
            parent[find(n)] = find(names[0])
        parent[find(d.path)] = find(names[0])
    return {d.path: find(d.path) for d in docs}


class Router:
    """Reads `Route`s from questions with one index's vocabulary (documents, sources, dates)."""

    def __init__(self, docs: Iterable[Doc], records: FilterReader | None = None) -> None:
        self.docs = list(docs)
        self.records = records
        self._alias: dict[str, set[str]] = {}  # compact alias -> entity keys
        self._ticker: dict[str, set[str]] = {}  # upper ticker -> entity keys
        self._by_entity: dict[str, list[Doc]] = {}
        keys = _merge_entities(self.docs)
        for d in self.docs:
            key = keys[d.path]
            self._by_entity.setdefault(key, []).append(d)
            for a in [d.entity or "", *d.aliases]:
                c = _usable(a)
                if c is None:
                    continue
                if a.isupper() and len(a) <= 5 and " " not in a:
                    self._ticker.setdefault(a, set()).add(key)
                if len(c) >= 3:
                    self._alias.setdefault(c, set()).add(key)
        self._names = {k: max((d.entity or k for d in docs), key=len) for k, docs in self._by_entity.items()}

    def documents(self) -> list[dict[str, Any]]:
        """The documents' metadata as routing reads it (`mmrag/ingest/meta.py`), one entry per file,
        with its label (`mmrag info` lists them)."""
        from dataclasses import asdict

        out = []
        for d in self.docs:
            fields = {k: v for k, v in asdict(d).items() if v not in (None, [])}
            out.append(fields | {"label": doc_label({f"doc_{k}": v for k, v in fields.items()})})
        return out

    @classmethod
    def from_payloads(cls, payloads: Iterable[dict[str, Any]]) -> Router:
        """Collect documents and record vocabulary from stored payloads (one scroll over the index)."""
        docs: dict[str, Doc] = {}
        sources: set[str] = set()
        has_dates = False
        for p in payloads:
            if isinstance(src := p.get(SOURCE_FIELD), str):
                sources.add(src)
            has_dates = has_dates or isinstance(p.get(DATE_FIELD), str)
            path = p.get("path")
            if not isinstance(path, str) or path in docs or not (p.get("doc_entity") or p.get("doc_aliases")):
                continue
            docs[path] = Doc(
                path,
                p.get("doc_entity"),
                list(p.get("doc_aliases") or []),
                p.get("doc_type"),
                p.get("doc_year"),
                p.get("doc_quarter"),
                p.get("doc_date"),
            )
        reader = FilterReader(sources, has_dates) if sources or has_dates else None
        return cls(docs.values(), reader)

    def entities_in(self, question: str) -> list[str]:
        """Entity keys named in `question`, in order of appearance."""
        words = [(m.start(), m.group(0)) for m in _WORD.finditer(question)]
        found: list[tuple[int, str]] = []
        for i, (pos, w) in enumerate(words):
            stripped = re.sub(r"['’]s$", "", w)
            if stripped.upper() in self._ticker and (
                stripped.isupper() or sum(ch.isupper() for ch in stripped) >= 2
            ):
                found += [(pos, k) for k in self._ticker[stripped.upper()]]
            if not w[0].isupper():
                continue
            for n in range(MAX_SPAN, 0, -1):
                span = " ".join(x for _, x in words[i : i + n])
                keys = self._alias.get(compact(span))
                if keys:
                    found += [(pos, k) for k in keys]
                    break
        return list(dict.fromkeys(k for _, k in sorted(found)))

    def read(self, question: str) -> Route:
        """The route of one question (empty when it names nothing the index knows)."""
        route = Route(periods=find_periods(question))
        for key in self.entities_in(question):
            docs = self._by_entity[key]
            scores = [period_score(d, route.periods) for d in docs]
            best = max(scores)
            group = [d.path for d, s in zip(docs, scores, strict=True) if s >= best - PERIOD_SLACK]
            route.entities.append(self._names[key])
            route.groups.append(group)
        if not route.groups and (route.periods.quarters or route.periods.days):
            # no name, but a period precise enough ("Q2 of FY2024") that few documents fit it exactly
            exact = [d.path for d in self.docs if _precise(d, route.periods)]
            if 0 < len(exact) <= PERIOD_ONLY_MAX:
                route.groups.append(exact)
        if self.records is not None:
            qf = self.records.read(question)
            route.match = qf.match()
            route.sources = qf.sources
            route.unindexed = qf.unindexed
        return route
