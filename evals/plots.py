"""Sweep plots: one grouped bar chart of configurations x metrics, saved as PNG (matplotlib, Agg)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mmrag.types import MMRAGError


def bar_chart(
    path: str | Path,
    values: Mapping[str, Mapping[str, float]],
    metrics: Sequence[str],
    title: str,
    baseline: Mapping[str, float] | None = None,
) -> Path:
    """Bars of `values[config][metric]`, grouped by configuration; `baseline` draws dashed lines.

    Raises:
        MMRAGError: matplotlib is missing (`pip install -e ".[dev]"`).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise MMRAGError('plots need matplotlib: pip install -e ".[dev]"') from e
    configs = list(values)
    width = 0.8 / max(1, len(metrics))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(configs) + 2), 4.2))
    for j, m in enumerate(metrics):
        xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(configs))]
        ax.bar(xs, [float(values[c].get(m, 0.0)) for c in configs], width, label=m)
    for name, y in (baseline or {}).items():
        ax.axhline(y, linestyle="--", linewidth=1, color="grey")
        ax.text(len(configs) - 0.5, y, f" {name}", va="bottom", ha="right", fontsize=8, color="grey")
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, rotation=30, ha="right", fontsize=8)
    ax.set_ylim(0, 1.0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, ncol=len(metrics), loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
