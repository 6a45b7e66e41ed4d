"""The tables of a MultiHop-RAG retrieval run: markdown for the run folder, rich for the terminal."""

from __future__ import annotations

from typing import Any

from mmrag.evals.multihop_data import METRICS


def markdown(metrics: dict[str, Any]) -> str:
    """Two tables: every configuration on all queries, then Hits@4 / MRR@10 per question type."""
    configs = list(metrics["configs"])
    lines = [
        f"**{metrics['label']}**, split `{metrics['split']}`, {metrics['questions']} queries with evidence",
        "",
        "| configuration | " + " | ".join(METRICS) + " | ms/query |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for c in configs:
        vals = [f"{metrics['configs'][c]['all'][m]:.3f}" for m in METRICS]
        ms = metrics.get("ms_per_query", {}).get(c, 0.0)
        lines.append(f"| {c} | " + " | ".join(vals) + f" | {ms:.0f} |")
    types = [t for t in metrics["configs"][configs[0]] if t != "all"]
    lines += ["", "| configuration | " + " | ".join(f"{t} hits@4 / mrr@10" for t in types) + " |"]
    lines.append("|---" * (len(types) + 1) + "|")
    for c in configs:
        cells = [
            f"{metrics['configs'][c][t]['hits@4']:.3f} / {metrics['configs'][c][t]['mrr@10']:.3f}"
            for t in types
        ]
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    if "answers" in metrics:
        from mmrag.evals.multihop_answers import markdown as answers_md

        a = metrics["answers"]
        lines += ["", answers_md(a["accuracy"], a["model"], a["config"])]
    return "\n".join(lines) + "\n"


def print_table(metrics: dict[str, Any]) -> None:
    """The side-by-side table, with rich (rows: configurations; columns: metrics of all queries)."""
    from rich.console import Console
    from rich.table import Table

    title = f"{metrics['label']} · {metrics['split']} · {metrics['questions']} queries with evidence"
    table = Table(title=title)
    table.add_column("configuration")
    for m in METRICS:
        table.add_column(m, justify="right")
    for c, by_type in metrics["configs"].items():
        table.add_row(c, *(f"{by_type['all'][m]:.3f}" for m in METRICS))
    Console(stderr=True).print(table)


__all__ = ["markdown", "print_table"]
