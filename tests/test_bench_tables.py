"""The docs' benchmark tables and the README's headline numbers are what `bench/results/*.json` render.

`bench/tables.py` writes them between marker comments; these tests fail when a committed page differs
from its JSON (a result re-measured without `python bench/tables.py`), and check that the renderer
notices an edited result, shows every model a result holds, and names split, model and date.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


@pytest.fixture(scope="module")
def tables() -> ModuleType:
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_tables", BENCH / "tables.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_tables"] = module  # its dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture
def copy(tmp_path: Path, tables: ModuleType) -> tuple[Path, Path]:
    """A copy of the pages the specs name and of bench/results, to edit freely."""
    root, results = tmp_path / "root", tmp_path / "results"
    for page in {t.page for t in tables.TABLES} | {h.page for h in tables.HEADLINES}:
        (root / page).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / page, root / page)
    shutil.copytree(tables.RESULTS, results)
    return root, results


def test_committed_pages_are_what_the_results_render(tables: ModuleType) -> None:
    stale = tables.update(write=False)
    assert not stale, "run `python bench/tables.py`: " + "; ".join(
        f"{s.page} {s.kind} {s.name}: {s.reason}" for s in stale
    )
    assert len(tables.TABLES) >= 20 and len(tables.HEADLINES) >= 4


def test_an_edited_result_makes_its_table_and_headline_stale(
    tables: ModuleType, copy: tuple[Path, Path]
) -> None:
    root, results = copy
    path = results / "multihop_test_issue15.json"
    data = json.loads(path.read_text())
    data["configs"]["hybrid+routing(boost)+contextual"]["all"]["complete@10"] = 0.1234
    path.write_text(json.dumps(data))
    stale = tables.update(root=root, results=results, write=False)
    assert {(s.kind, s.name) for s in stale} == {("table", "multihop-facts"), ("headline", "multihop")}
    tables.update(root=root, results=results, write=True)  # regenerated: fresh again, with the new number
    assert tables.update(root=root, results=results, write=False) == []
    assert "| 0.123 |" in (root / "docs" / "benchmarks.md").read_text()
    assert "top 10 for 0.123 of the questions" in (root / "README.md").read_text()


def test_a_table_without_markers_is_reported(tables: ModuleType, copy: tuple[Path, Path]) -> None:
    root, results = copy
    page = root / "docs" / "benchmarks.md"
    page.write_text(page.read_text().replace("<!-- table:conse -->", "").replace("<!-- /table:conse -->", ""))
    stale = tables.update(root=root, results=results, write=False)
    assert [(s.name, "markers" in s.reason) for s in stale] == [("conse", True)]


def test_answer_tables_show_every_model_in_the_result(tables: ModuleType) -> None:
    specs = [t for t in tables.TABLES if t.rows == "models"]
    assert {t.source for t in specs} >= {"answer_models_test.json"}
    for spec in specs:
        models = json.loads((tables.RESULTS / spec.source).read_text())["models"]
        rendered = tables.render_table(spec)
        rows = {line.split(" | ")[0].removeprefix("| ") for line in rendered.splitlines()[4:]}
        assert rows == set(models), spec.source
    test = next(t for t in specs if t.source == "answer_models_test.json")
    assert {"smollm2-135m", "qwen2.5-coder-0.5b"} <= {
        ln.split(" | ")[0][2:] for ln in tables.render_table(test).splitlines()
    }


def test_every_table_names_its_file_split_model_and_date(tables: ModuleType) -> None:
    for spec in tables.TABLES:
        caption = tables.render_table(spec).splitlines()[0]
        assert f"`bench/results/{spec.source}`" in caption, spec.name
        assert "split:" in caption and "model:" in caption, (spec.name, caption)
        assert re.search(r"date: (committed )?20\d\d-\d\d-\d\d\*$", caption), (spec.name, caption)


def test_paths_read_keys_with_dots_and_lists(tables: ModuleType) -> None:
    data = {"models": {"qwen2.5-coder-0.5b": {"n": 3}}, "rows": [{"x": 1}, {"x": 2}]}
    assert tables.lookup(data, tables.split_path("models.[qwen2.5-coder-0.5b].n")) == 3
    assert tables.lookup(data, tables.split_path("rows.1.x")) == 2
    assert tables.lookup(data, tables.split_path("rows.7.x")) is None
    assert (
        tables.fmt(1234, "auto") == "1,234"
        and tables.fmt(0.25, "auto") == "0.250"
        and tables.fmt(None, "auto") == ""
    )
    assert tables.run_date({"run": "runs/multihop/20261202-165854"}, "x.json") == "2026-12-02"
    assert tables.run_date({"date": "2027-01-05", "run": "runs/a/20261202-165854"}, "x.json") == "2027-01-05"
