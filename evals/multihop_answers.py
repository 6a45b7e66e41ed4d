"""MultiHop-RAG answer accuracy: answers generated from retrieved hits and from the gold evidence.

Every query is answered, null queries included (their gold answer is "Insufficient information.",
which the `ask` prompt tells the model to say when the sources do not answer). Two contexts, side
by side in one run:

- `retrieved`: the top hits of a retrieval configuration, packed as `mmrag ask` packs them;
- `gold`: the query's evidence facts (title, source and date with the fact), the upper bound that
  retrieval cannot beat with the same model.

Rule (the MultiHop-RAG README's): an answer is correct when the normalised gold answer (lower case,
punctuation dropped, spaces collapsed) appears in the normalised generated answer.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from mmrag.types import Hit

if TYPE_CHECKING:
    from mmrag.answer.question import Found
    from mmrag.config import GenerateConfig

CONTEXTS = ("retrieved", "gold")


def norm_answer(text: str) -> str:
    """Lower case, punctuation dropped, whitespace collapsed."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def is_correct(generated: str, gold: str) -> bool:
    """The official rule: the normalised gold answer is a substring of the normalised answer."""
    g = norm_answer(gold)
    return bool(g) and g in norm_answer(generated)


def is_correct_strict(generated: str, gold: str) -> bool:
    """The rule that shows the real difficulty: the gold answer as whole words, and a Yes/No gold
    answer only when the answer says that word and not the other.

    The official substring rule credits `announcing` for "no" and `[1] Yes [2] No` for either; this
    one credits neither.
    """
    g, a = norm_answer(gold), f" {norm_answer(generated)} "
    if not g or f" {g} " not in a:
        return False
    if g in ("yes", "no"):
        return (" no " if g == "yes" else " yes ") not in a
    return True


def gold_hits(query: dict[str, Any]) -> list[Hit]:
    """The evidence of a query as hits (its facts with their article's title, source and date)."""
    out = []
    for i, e in enumerate(query.get("evidence_list", [])):
        head = f"{e.get('title', '')} ({e.get('source', '')}, {str(e.get('published_at', ''))[:10]})"
        out.append(
            Hit(id=f"gold-{i}", score=1.0, modality="text", path="evidence", text=f"{head}: {e['fact']}")
        )
    return out


def accuracy(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Accuracy per context, overall and per question type."""
    out: dict[str, dict[str, float]] = {}
    for ctx in CONTEXTS:
        by: dict[str, list[bool]] = defaultdict(list)
        for r in rows:
            if ctx in r:
                by["all"].append(r[ctx]["correct"])
                by[r["type"]].append(r[ctx]["correct"])
        out[ctx] = {t: round(sum(v) / len(v), 4) for t, v in by.items() if v}
        out[ctx]["n"] = len(by["all"])
    return out


def answer_queries(
    queries: Sequence[dict[str, Any]],
    retrieve: Callable[[str], Found],
    gen_cfg: GenerateConfig,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Answer each query from its retrieved hits and from its gold evidence; score both."""
    from rich.progress import Progress

    from mmrag.answer.ask import answer
    from mmrag.answer.question import unindexed_of

    rows = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("answering", total=len(queries))
        for i, q in enumerate(queries):
            row: dict[str, Any] = {"i": i, "type": q["question_type"], "gold_answer": q["answer"]}
            for ctx in CONTEXTS:
                t0 = time.perf_counter()
                if ctx == "retrieved":
                    found = retrieve(q["query"])
                    ans = answer(q["query"], found.hits, gen_cfg, unindexed=unindexed_of(found))
                else:
                    ans = answer(q["query"], gold_hits(q), gen_cfg)
                row[ctx] = {
                    "answer": ans.text,
                    "correct": is_correct(ans.text, q["answer"]),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
            rows.append(row)
            bar.advance(task)
    return rows


def markdown(acc: dict[str, dict[str, float]], model: str, config: str) -> str:
    """Accuracy table: rows question types, columns contexts."""
    types = [t for t in acc["retrieved"] if t not in ("n",)]
    lines = [
        f"Answer accuracy, generator `{model}`, retrieval `{config}` (top hits) vs gold evidence",
        "",
        "| question type | retrieved | gold evidence |",
        "|---|---|---|",
    ]
    for t in types:
        lines.append(f"| {t} | {acc['retrieved'].get(t, 0):.3f} | {acc['gold'].get(t, 0):.3f} |")
    return "\n".join(lines) + "\n"
