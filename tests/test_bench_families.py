"""`bench/families.py` (the GPU measurement of ColQwen2 and Qwen2.5-VL at real size) runs end to end on
tiny configurations, so the script works when a GPU is lent."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="NF4 needs bitsandbytes")
def test_tiny_run(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        from families import main
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "families.json"
    args = ["--tiny", "--page-tokens", "8", "--prompt-tokens", "16", "--new-tokens", "3", "--batch", "2"]
    result = main([*args, "--repeats", "1", "--out", str(out)])
    assert out.is_file()
    page = result["colqwen2"]
    # a page's multi-vector: its 8 merged patches, the vision start/end markers and the 24 text tokens
    assert page["rows_per_page"] == 8 + 2 + 24 and page["pages_per_second"] > 0
    gen = result["qwen2.5-vl-7b"]
    for precision in ("float32", "nf4"):
        assert gen[precision]["ttft_s"] > 0 and gen[precision]["decode_tok_s"] > 0
