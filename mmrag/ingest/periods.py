"""Periods, days and document types written in text: shared by metadata extraction and question routing.

Days: "October 22, 2023", "Oct. 22 2023", "1st July 2022", "2023-10-22". Periods: "FY2022", "FY 22",
"fiscal 2022", "fiscal year 2022", "Q2 of FY2024", "Q2'2023", "FY2023Q1", "second quarter 2023",
"2022 annual report" and plain years. Document types are normalised to `DOC_TYPES`.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

DOC_TYPES = (
    "10-K",
    "10-Q",
    "8-K",
    "annual report",
    "quarterly report",
    "earnings release",
    "proxy statement",
)
"""Canonical document types; anything else is kept as written."""
TYPE_FAMILY = {
    "10-K": "annual",
    "annual report": "annual",
    "10-Q": "quarterly",
    "quarterly report": "quarterly",
    "8-K": "event",
    "earnings release": "earnings",
    "proxy statement": "proxy",
    "article": "event",
}
"""A question naming one member of a family matches every member ("annual report" finds a 10-K)."""

MONTHS = {
    m.lower(): i
    for i, names in enumerate(
        [
            ("January", "Jan"),
            ("February", "Feb"),
            ("March", "Mar"),
            ("April", "Apr"),
            ("May",),
            ("June", "Jun"),
            ("July", "Jul"),
            ("August", "Aug"),
            ("September", "Sep", "Sept"),
            ("October", "Oct"),
            ("November", "Nov"),
            ("December", "Dec"),
        ],
        start=1,
    )
    for m in names
}
"""Month names and abbreviations (lower case) to their number."""
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_DAY_PATTERNS = [
    re.compile(rf"\b(?P<m>{_MONTH})\.?\s+(?P<d>\d{{1,2}})(?:st|nd|rd|th)?,?\s+(?P<y>\d{{4}})\b", re.I),
    re.compile(
        rf"\b(?P<d>\d{{1,2}})(?:st|nd|rd|th)?\s+(?:of\s+)?(?P<m>{_MONTH})\.?,?\s+(?P<y>\d{{4}})\b", re.I
    ),
    re.compile(r"(?<!\d)(?P<y>(?:19|20)\d\d)-(?P<mm>\d{2})-(?P<d>\d{2})(?!\d)"),
]
_TYPE_PATTERNS = [
    (re.compile(r"(?i)\bform\s+10-?K\b"), "10-K"),
    (re.compile(r"(?i)\bform\s+10-?Q\b"), "10-Q"),
    (re.compile(r"(?i)\bform\s+8-?K\b"), "8-K"),
]
_LOOSE_TYPES = [
    (re.compile(r"(?i)(?<![\w-])10[- ]?K(?![\w-])"), "10-K"),
    (re.compile(r"(?i)(?<![\w-])10[- ]?Q(?![\w-])"), "10-Q"),
    (re.compile(r"(?i)(?<![\w-])8[- ]?K(?![\w-])"), "8-K"),
    (re.compile(r"(?i)\bannual report\b"), "annual report"),
    (re.compile(r"(?i)\bquarterly report\b"), "quarterly report"),
    (
        re.compile(r"(?i)\b(?:earnings(?: release| report| call)?|press release|results release)\b"),
        "earnings release",
    ),
    (re.compile(r"(?i)\bproxy statement\b"), "proxy statement"),
]
_YEAR = r"(?:19|20)\d\d"
_Q_WORDS = {"first": 1, "second": 2, "third": 3, "fourth": 4}
_QUARTER_PATTERNS = [
    # Q2 of FY2024, Q2 FY24, Q2'2023, Q22023, Q2 2023
    re.compile(r"(?i)\bQ([1-4])\s*(?:of\s+)?(?:fiscal\s+(?:year\s+)?|FY\s?)?'?((?:19|20)?\d\d)(?!\d)"),
    # FY2023Q1, FY2023 Q1, 2023Q1
    re.compile(r"(?i)(?:\bFY\s?)?\b((?:19|20)\d\d)\s?Q([1-4])\b"),
    # second quarter of fiscal 2023, first-quarter 2023
    re.compile(
        rf"(?i)\b(first|second|third|fourth)[- ]quarter\s+(?:of\s+)?"
        rf"(?:fiscal\s+(?:year\s+)?|FY\s?)?({_YEAR})\b"
    ),
]
_YEAR_PATTERNS = [
    re.compile(r"(?i)\bFY\s?'?(\d{4}|\d{2})(?!\d)"),
    re.compile(rf"(?i)\bfiscal\s+(?:year\s+)?({_YEAR}|'?\d\d)\b"),
    re.compile(rf"\b({_YEAR})\b"),
]


def find_days(text: str) -> list[str]:
    """Calendar days written in `text`, `YYYY-MM-DD`, in order of appearance, each once."""
    found: list[tuple[int, str]] = []
    for pat in _DAY_PATTERNS:
        for m in pat.finditer(text):
            g = m.groupdict()
            month = int(g["mm"]) if g.get("mm") else MONTHS[g["m"].lower()]
            try:
                day = dt.date(int(g["y"]), month, int(g["d"]))
            except ValueError:
                continue  # "February 30": not a date
            found.append((m.start(), str(day)))
    return list(dict.fromkeys(d for _, d in sorted(found)))


def find_day(text: str) -> str | None:
    """The first calendar day written in `text`, or None."""
    days = find_days(text)
    return days[0] if days else None


def doc_type_in(text: str, strict: bool = True) -> str | None:
    """The document type `text` names: "FORM 10-K" (strict), or also "10K", "annual report" (loose)."""
    hits = [(m.start(), t) for pat, t in _TYPE_PATTERNS if (m := pat.search(text))]
    if not strict:
        hits += [(m.start(), t) for pat, t in _LOOSE_TYPES if (m := pat.search(text))]
    return min(hits)[1] if hits else None


def doc_types_in(text: str) -> list[str]:
    """Every document type `text` names, loosely ("the 10K report", "8k filing", "annual report")."""
    return [t for pat, t in _TYPE_PATTERNS + _LOOSE_TYPES if pat.search(text)]


def _year(y: str) -> int:
    y = y.lstrip("'")
    return int(y) if len(y) == 4 else 2000 + int(y)


@dataclass
class Periods:
    """The periods a text names."""

    years: set[int] = field(default_factory=set)
    quarters: set[tuple[int, int]] = field(default_factory=set)
    """(year, quarter) pairs."""
    days: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.years or self.days or self.types)


def find_periods(text: str) -> Periods:
    """Years, quarters, days and document types written in `text` (a question, usually)."""
    out = Periods(days=find_days(text), types=list(dict.fromkeys(doc_types_in(text))))
    for i, pat in enumerate(_QUARTER_PATTERNS):
        for m in pat.finditer(text):
            a, b = m.group(1), m.group(2)
            if i == 0:
                q, y = int(a), _year(b)
            elif i == 1:
                y, q = int(a), int(b)
            else:
                q, y = _Q_WORDS[a.lower()], int(b)
            out.quarters.add((y, q))
    for pat in _YEAR_PATTERNS:
        for m in pat.finditer(text):
            out.years.add(_year(m.group(1)))
    out.years |= {y for y, _ in out.quarters}
    out.years = {y for y in out.years if 1900 <= y <= 2100}
    return out


def period_label(fields: dict[str, object]) -> str | None:
    """ "FY2022", "FY2023 Q2" or the day of an event document, from `year`, `quarter`, `date`, `type`."""
    year, quarter, day = fields.get("year"), fields.get("quarter"), fields.get("date")
    if TYPE_FAMILY.get(str(fields.get("type"))) == "event" and day:
        return str(day)
    if year and quarter:
        return f"FY{year} Q{quarter}"
    if year:
        return f"FY{year}"
    return str(day) if day else None
