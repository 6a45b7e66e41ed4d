"""`--report`: the HTML page of an eval run holds its tables, plots and examples, escaped."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from mmrag.evals.plots import bar_chart
from mmrag.evals.report import Example, write_report
from mmrag.types import Hit


def test_report_inlines_plots_and_hit_images(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.md").write_text("**t**\n\n| config | hits@4 |\n|---|---|\n| a<b | 0.5 |\n")
    bar_chart(run / "sweep.png", {"a": {"hits@4": 0.5}, "b": {"hits@4": 0.9}}, ["hits@4"], "t")
    pic = tmp_path / "red.png"
    Image.new("RGB", (64, 48), (255, 0, 0)).save(pic)
    hits = [
        Hit("1", 0.9, "image", str(pic), text="<script>alert(1)</script>"),
        Hit("2", 0.5, "text", str(tmp_path / "a.txt"), text="plain words"),
        Hit("3", 0.4, "image", str(tmp_path / "gone.png")),  # a moved file: still renders
    ]
    out = write_report(run, "Suite <x>", [Example("what & why?", hits, note="gold: yes", ok=True)])
    page = out.read_text()
    assert out.name == "report.html"
    assert page.count("data:image/png;base64,") == 1  # the sweep plot
    assert page.count("data:image/jpeg;base64,") == 1  # the red picture; the missing one is skipped
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "a&lt;b" in page and "what &amp; why?" in page and "Suite &lt;x&gt;" in page
    assert "<td>0.5</td>" in page and "plain words" in page
    json.dumps(page)  # one self-contained string
