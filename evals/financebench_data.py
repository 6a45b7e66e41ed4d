"""FinanceBench data and scoring: the questions, their evidence pages, page-level metrics, a run's config.

`mmrag.evals.financebench` runs the retrieval configurations and `mmrag.evals.financebench_answers`
the answers; both read the questions and fold hits into pages through this module. The protocol is
in `mmrag.evals.financebench`'s docstring.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import defaultdict
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmrag.types import Hit, MMRAGError

if TYPE_CHECKING:
    from mmrag.pipeline import Pipeline

# name -> keyword options of `Pipeline.search` (`spaces` among "text", "bm25", "image"; none: all).
CONFIGS: dict[str, dict[str, Any]] = {
    "bm25": {"spaces": ["bm25"]},
    "dense-text": {"spaces": ["text"]},
    "image": {"spaces": ["image"]},
    "hybrid": {},
    "dense-text+hubness": {"spaces": ["text"], "hubness": True},
    "hybrid+hubness": {"hubness": True},
    # issue 15's components, each on top of the row before it (`contextual`: the index built with
    # contextual chunks; `group`: pages ranked by their best points, or documents first)
    "hybrid+routing": {"route": "filter"},
    "hybrid+routing(boost)": {"route": "boost"},
    "hybrid+routing+pages": {"route": "filter", "group": "page"},
    "hybrid+routing+two-stage": {"route": "filter", "group": "document-page"},
    "hybrid+pages": {"group": "page"},
    "hybrid(rrf60)": {"rrf_k": 60},
    "hybrid(dbsf)": {"fusion": "dbsf"},
    "dense-text+routing": {"spaces": ["text"], "route": "filter"},
    # the fix for hybrid below dense: BM25's list weighs a third of the dense one's (chosen on dev)
    "hybrid(3:1)": {"dense_weight": 3.0},
    "hybrid(2:1)": {"dense_weight": 2.0},
    "hybrid(3:1)+routing": {"dense_weight": 3.0, "route": "filter"},
    # issue 25: settings chosen by the worst question type, not the mean
    "hybrid(2:1)+routing": {"dense_weight": 2.0, "route": "filter"},
    "hybrid(1:2)+routing": {"dense_weight": 0.5, "route": "filter"},
    "hybrid(3:1)+routing+pages": {"dense_weight": 3.0, "route": "filter", "group": "page"},
    "hybrid(3:1)+routing+two-stage": {"dense_weight": 3.0, "route": "filter", "group": "document-page"},
    "hybrid(3:1)+routing(boost)": {"dense_weight": 3.0, "route": "boost"},
    "hybrid(3:1)+contextual": {"dense_weight": 3.0, "contextual": True},
    "hybrid(3:1)+contextual+routing": {"dense_weight": 3.0, "contextual": True, "route": "filter"},
    "hybrid(3:1)+contextual+routing+pages": {
        "dense_weight": 3.0,
        "contextual": True,
        "route": "filter",
        "group": "page",
    },
    "hybrid(3:1)+contextual+routing+two-stage": {
        "dense_weight": 3.0,
        "contextual": True,
        "route": "filter",
        "group": "document-page",
    },
    "bm25+routing": {"spaces": ["bm25"], "route": "filter"},
    "hybrid+routing+contextual": {"route": "filter", "contextual": True},
    "hybrid+routing+contextual+pages": {"route": "filter", "contextual": True, "group": "page"},
    "hybrid+routing+contextual+two-stage": {"route": "filter", "contextual": True, "group": "document-page"},
    "hybrid+contextual": {"contextual": True},
    "bm25+contextual": {"spaces": ["bm25"], "contextual": True},
    "dense-text+contextual": {"spaces": ["text"], "contextual": True},
    # why hybrid lost to dense: the fusion, studied on the contextual index
    "hybrid+contextual(rrf60)": {"contextual": True, "rrf_k": 60},
    "hybrid+contextual(dbsf)": {"contextual": True, "fusion": "dbsf"},
    "hybrid+contextual+routing": {"contextual": True, "route": "filter"},
    "hybrid+contextual+routing(boost)": {"contextual": True, "route": "boost"},
    "hybrid+contextual+routing+pages": {"contextual": True, "route": "filter", "group": "page"},
    "hybrid+contextual+routing+two-stage": {"contextual": True, "route": "filter", "group": "document-page"},
    "dense-text+routing+contextual": {"spaces": ["text"], "route": "filter", "contextual": True},
    # tables (`ingest.pdf_tables`): a text chunk per table whose rows keep their labels and headers
    "hybrid(3:1)+routing+tables": {"dense_weight": 3.0, "route": "filter", "tables": True},
    "hybrid(3:1)+tables": {"dense_weight": 3.0, "tables": True},
    "hybrid(3:1)+contextual+routing+tables": {
        "dense_weight": 3.0,
        "contextual": True,
        "route": "filter",
        "tables": True,
    },
}
SEARCH_SETTINGS = ("fusion", "rrf_k", "prefetch", "dense_weight")
"""Configuration keys that set `search` settings for the configuration's run (fusion studies)."""
INDEX_OPTIONS = ("contextual", "tables")
"""Configuration keys that choose the index (an ingest setting: `ingest.contextual`,
`ingest.pdf_tables`) rather than a search option; each combination is an index of its own."""


def search_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """A configuration's `Pipeline.retrieve` keywords: neither index options nor search settings."""
    return {k: v for k, v in options.items() if k not in INDEX_OPTIONS and k not in SEARCH_SETTINGS}


@contextlib.contextmanager
def search_settings(pipe: Pipeline, options: Mapping[str, Any]) -> Iterator[None]:
    """A configuration's search settings (`dense_weight`, `fusion`, ...) on `pipe` inside the block."""
    base = pipe.config.search
    pipe.config.search = replace(base, **{k: v for k, v in options.items() if k in SEARCH_SETTINGS})
    try:
        yield
    finally:
        pipe.config.search = base


DEFAULT_CONFIGS = (
    "bm25",
    "dense-text",
    "image",
    "hybrid",
    "hybrid(3:1)",
    "hybrid(3:1)+routing",
    "hybrid(3:1)+contextual+routing",
    "hybrid(3:1)+routing+tables",
    "hybrid(3:1)+routing+pages",
    "hybrid(3:1)+routing+two-stage",
)
"""What `mmrag eval financebench` runs: the baselines, then one component at a time on top of hybrid."""
SPLITS = ("all", "dev", "test")
METRICS = ("recall@5", "recall@10", "mrr@10", "doc_recall@5")

Page = tuple[str, int]


def shared_financebench() -> Path:
    """`$MMRAG_SHARED_DATA/docs/financebench`, by default ../shared/data beside the checkout."""
    default = Path(__file__).resolve().parents[2] / "shared" / "data"
    return Path(os.environ.get("MMRAG_SHARED_DATA", default)) / "docs" / "financebench"


# -- retrieval metrics -------------------------------------------------------------------------------
def first_per_page(hits: Sequence[Hit]) -> dict[Page, Hit]:
    """The first hit of each `(document, page)` in rank order (the document is the file stem)."""
    out: dict[Page, Hit] = {}
    for h in hits:
        if h.page is not None:
            out.setdefault((Path(h.path).stem, int(h.page)), h)
    return out


def ranked_pages(hits: Sequence[Hit]) -> list[Page]:
    """`(document, page)` of the hits in rank order, each page once (a window maps to its page)."""
    return list(first_per_page(hits))


def page_metrics(pages: Sequence[Page], evidence: Collection[Page]) -> dict[str, float]:
    """Recall@5, Recall@10, MRR@10 and Doc Recall@5 of deduplicated ranked pages against the evidence."""
    gold = set(evidence)
    if not gold:
        raise ValueError("a question needs at least one evidence page")
    first = next((r for r, p in enumerate(pages[:10], start=1) if p in gold), None)
    gold_docs = {d for d, _ in gold}
    return {
        "recall@5": len(gold & set(pages[:5])) / len(gold),
        "recall@10": len(gold & set(pages[:10])) / len(gold),
        "mrr@10": 1.0 / first if first else 0.0,
        "doc_recall@5": len(gold_docs & {d for d, _ in pages[:5]}) / len(gold_docs),
    }


def aggregate(rows: Sequence[dict[str, Any]], config: str) -> dict[str, dict[str, float]]:
    """Mean of each metric of `row[config]["metrics"]`, overall (`all`) and per `row["type"]`."""
    groups: dict[str, list[dict[str, float]]] = defaultdict(list)
    for r in rows:
        groups["all"].append(r[config]["metrics"])
        groups[r["type"]].append(r[config]["metrics"])
    return {
        t: {m: round(sum(x[m] for x in ms) / len(ms), 4) for m in METRICS} | {"n": len(ms)}
        for t, ms in sorted(groups.items())
    }


# -- data --------------------------------------------------------------------------------------------
def split_of(questions: Sequence[dict[str, Any]]) -> dict[str, str]:
    """The fixed dev/test halves, stratified by question type: `financebench_id` -> `dev` or `test`.

    The rule (stable, written down so that it never moves): within each `question_type`, sort the
    questions by `financebench_id`; the 1st, 3rd, 5th... go to `dev`, the 2nd, 4th, 6th... to
    `test`. A type with an odd count gives its extra question to `dev`. Records without an id are
    keyed by their question text.
    """
    by_type: dict[str, list[str]] = defaultdict(list)
    for q in questions:
        by_type[str(q.get("question_type") or "unknown")].append(_qid(q))
    return {
        qid: ("dev" if i % 2 == 0 else "test")
        for ids in by_type.values()
        for i, qid in enumerate(sorted(ids))
    }


def select_split(questions: list[dict[str, Any]], split: str) -> list[dict[str, Any]]:
    """The questions of one half (`dev`, `test`) or all of them (`all`)."""
    if split not in SPLITS:
        raise MMRAGError(f"unknown split {split!r}: choose from {', '.join(SPLITS)}")
    if split == "all":
        return questions
    halves = split_of(questions)
    return [q for q in questions if halves[_qid(q)] == split]


def _qid(q: dict[str, Any]) -> str:
    return str(q.get("financebench_id") or q["question"])


def load_questions(path: str | Path) -> list[dict[str, Any]]:
    """FinanceBench records from a JSONL (or JSON list) file; MMRAGError naming the file and record."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            data = json.loads(text)
        else:
            data = [json.loads(line) for line in text.splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MMRAGError(f"{p}: cannot read FinanceBench questions: {e}") from e
    for i, q in enumerate(data):
        ok = isinstance(q, dict) and isinstance(q.get("question"), str) and isinstance(q.get("doc_name"), str)
        if not ok or not isinstance(q.get("evidence"), list) or not q["evidence"]:
            raise MMRAGError(f"{p}: record {i} lacks `question`, `doc_name` or a non-empty `evidence` list")
        if not all(
            isinstance(e, dict) and isinstance(e.get("evidence_page_num"), int) for e in q["evidence"]
        ):
            raise MMRAGError(f"{p}: record {i}: every evidence needs an integer `evidence_page_num`")
    return data


def evidence_pages(q: dict[str, Any]) -> list[Page]:
    """The question's evidence pages, `(doc_name, zero-based page)`, each once."""
    pages = ((str(e.get("doc_name") or q["doc_name"]), e["evidence_page_num"]) for e in q["evidence"])
    return list(dict.fromkeys(pages))


def resolve_data(questions: str | None, pdfs: str | None) -> tuple[Path, Path]:
    """`(questions file, PDF folder)`; MMRAGError naming what is missing."""
    root = shared_financebench()
    q = Path(questions) if questions else root / "questions.jsonl"
    d = Path(pdfs) if pdfs else root / "pdfs"
    if not q.is_file():
        raise MMRAGError(
            f"FinanceBench questions not found at {q}: pass --questions (financebench_open_source.jsonl) "
            "or set MMRAG_SHARED_DATA"
        )
    if not d.is_dir():
        raise MMRAGError(f"FinanceBench PDF folder not found at {d}: pass --pdfs or set MMRAG_SHARED_DATA")
    return q, d


@dataclass
class EvalConfig:
    """One FinanceBench run."""

    questions: str | None = None
    """Questions file (FinanceBench JSONL); default `<shared>/docs/financebench/questions.jsonl`."""
    pdfs: str | None = None
    """Folder of `<doc_name>.pdf` files; default the shared `pdfs/`."""
    docs: list[str] | None = None
    """Index only these documents and ask only their questions (None: every PDF of the folder)."""
    limit: int = 0
    """First N questions only (0: all)."""
    profile: str = "offline"
    image_model: str | None = None
    """Override `encoders.image` (a CLIP/SigLIP id or folder lets the `image` configuration run;
    `none`: no image tower, the text configurations are unchanged and indexing is faster)."""
    runs: str = "runs"
    hits: int = 50
    """Hits fetched per question before they fold into pages (the windows of a page collapse)."""
    configs: list[str] = field(default_factory=lambda: list(DEFAULT_CONFIGS))
    split: str = "all"
    """`dev` or `test` half (`split_of`), or `all` questions."""
    index: str | None = None
    """Search this existing index of the same PDFs instead of the cached one (never re-indexed)."""
    index_contextual: str | None = None
    """The same for the configurations that read the index with contextual chunks (and no tables)."""
    answers: bool = False
    """Also generate answers (slow) from the `answer_config` hits and from the gold pages."""
    answer_config: str = "hybrid"
    answer_k: int = 5
    answer_tokens: int = 64
