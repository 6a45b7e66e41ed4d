"""FinanceBench answers: the numeric-tolerance answer rule and the answer run of `--answers`.

An answer is correct when the normalised gold answer appears in it, or when the gold answer's number
(with its $, %, sign and thousand/million/billion scale) matches a number of the answer within 1%.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mmrag.types import Hit

if TYPE_CHECKING:
    from mmrag.evals.financebench_data import EvalConfig
    from mmrag.pipeline import Pipeline

# -- answer rule -------------------------------------------------------------------------------------
_SCALES = {"thousand": 1e3, "k": 1e3, "million": 1e6, "mn": 1e6, "mm": 1e6, "m": 1e6}
_SCALES |= {"billion": 1e9, "bn": 1e9, "b": 1e9}
# A number not glued to a word ("FY2022", "Q2" hold none), with its $, sign, % or scale word.
_NUMBER = re.compile(
    r"(?<![\w.,])[-−(]?\s?\$?\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\)?"
    r"(?:\s?(%|percent\b|thousand\b|million\b|billion\b|bn\b|mn\b|mm\b|[kmb]\b))?",
    re.IGNORECASE,
)


def parse_numbers(text: str) -> list[tuple[float, bool]]:
    """Every number in `text` as `(absolute value with its scale word applied, had a scale word)`.

    `$1,200 million` is (1.2e9, True); `(112)` and `-3.7%` are (112, False) and (3.7, False): signs
    are dropped because answers say "a decline of 3.7%" as often as "-3.7%".
    """
    out = []
    for m in _NUMBER.finditer(text):
        value = float(m.group(1).replace(",", ""))
        unit = (m.group(2) or "").lower()
        out.append((value * _SCALES[unit], True) if unit in _SCALES else (value, False))
    return out


def reference_number(gold: str) -> tuple[float, bool] | None:
    """The number of a numeric gold answer (`$11588.00`, `30.8%`, `36%. The answer assumes ...`)."""
    head = gold.strip().split(". ", 1)[0].strip().rstrip(".")
    m = _NUMBER.fullmatch(head)
    return parse_numbers(head)[0] if m else None


def numbers_match(gold: tuple[float, bool], pred: tuple[float, bool], rel: float = 0.01) -> bool:
    """Within `rel` relative; a number without a scale word may be in the filing's unit (thousands,
    millions, billions), so against a scaled number it is also tried at those scales."""
    (g, g_scaled), (p, p_scaled) = gold, pred
    factors = (1.0, 1e3, 1e6, 1e9) if g_scaled != p_scaled else (1.0,)
    for f in factors:
        a, b = (g * f, p) if p_scaled else (g, p * f)
        if abs(a - b) <= rel * max(abs(a), abs(b)):
            return True
    return False


def is_correct(answer: str, gold: str) -> bool:
    """Correct when the normalised gold answer appears in the answer, or, for a numeric gold answer,
    when a number of the answer is within 1% of it (see `numbers_match`)."""
    from mmrag.evals.multihop_answers import norm_answer

    g = norm_answer(gold)
    if g and g in norm_answer(answer):
        return True
    ref = reference_number(gold)
    return ref is not None and any(numbers_match(ref, p) for p in parse_numbers(answer))


def gold_hits(q: dict[str, Any]) -> list[Hit]:
    """The evidence pages of a question as hits (their full page text)."""
    out = []
    for i, e in enumerate(q["evidence"]):
        doc = e.get("doc_name") or q["doc_name"]
        text = e.get("evidence_text_full_page") or e.get("evidence_text")
        out.append(Hit(f"gold-{i}", 1.0, "page", f"{doc}.pdf", page=e["evidence_page_num"], text=text))
    return out


def answer_all(
    pipe: Pipeline,
    rows: list[dict[str, Any]],
    questions: list[dict[str, Any]],
    cfg: EvalConfig,
    options: Mapping[str, Any],
    progress: bool = True,
) -> dict[str, Any]:
    """Answer each question from its retrieved pages and from its gold pages (rows updated in place).

    The retrieved context is the first hit of each of the top `answer_k` pages: a page and its own
    windows would otherwise fill the context with the same text.
    """
    from rich.progress import Progress

    from mmrag.answer.ask import answer
    from mmrag.evals.financebench_data import first_per_page, ranked_pages, search_options, search_settings

    search = search_options(options)
    gen_cfg = replace(pipe.config.generate, max_new_tokens=cfg.answer_tokens)
    groups: dict[str, dict[str, list[bool]]] = {"retrieved": defaultdict(list), "gold": defaultdict(list)}
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("answering", total=len(rows))
        for row, q in zip(rows, questions, strict=True):
            gold = str(q.get("answer", ""))
            numeric = reference_number(gold) is not None
            row["answers"] = {"gold_answer": gold, "numeric_gold": numeric}
            for ctx in groups:
                if ctx == "retrieved":
                    with search_settings(pipe, options):
                        found = first_per_page(pipe.retrieve(q["question"], k=cfg.hits, **search).hits)
                    hits = list(found.values())[: cfg.answer_k]
                else:
                    hits = gold_hits(q)
                t0 = time.perf_counter()
                text = answer(q["question"], hits, gen_cfg).text
                ok = is_correct(text, gold)
                row["answers"][ctx] = {
                    "answer": text,
                    "correct": ok,
                    "pages": ranked_pages(hits),
                    "seconds": round(time.perf_counter() - t0, 2),
                }
                for g in ("all", row["type"], *(["numeric gold"] if numeric else [])):
                    groups[ctx][g].append(ok)
            bar.advance(task)
    return {
        "generator": gen_cfg.model,
        "retrieval": cfg.answer_config,
        "k": cfg.answer_k,
        "max_new_tokens": cfg.answer_tokens,
        "accuracy": {
            ctx: {g: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for g, v in sorted(by.items())}
            for ctx, by in groups.items()
        },
        "rule": "normalised gold answer in the answer, or a number within 1% of a numeric gold answer",
    }
