"""`Pipeline.info()` / `mmrag info` describe the generator: id, 4-bit or not, memory footprint."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from tiny_generators import tiny_llama  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.config import GenerateConfig  # noqa: E402
from mmrag.generate.loader import _GENERATORS, generator_info, memory_footprint  # noqa: E402


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tiny_llama(tmp_path_factory.mktemp("llm") / "llama"))


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("info")
    (root / "corpus").mkdir()
    (root / "corpus" / "ferry.txt").write_text("The electric ferry carried nine million passengers.")
    with Pipeline.from_config(profile="offline", index=root / "idx", **{"encoders.ocr": False}) as p:
        p.index([root / "corpus"])
    return root / "idx"


def _param_bytes(model: torch.nn.Module) -> int:
    return sum(t.nelement() * t.element_size() for t in [*model.parameters(), *model.buffers()])


def test_memory_reported_only_when_loaded_or_asked(llama_dir: str) -> None:
    cfg = GenerateConfig(model=llama_dir, device="cpu", quantize=False)
    _GENERATORS.pop((llama_dir, "cpu", False), None)
    cold = generator_info(cfg)
    assert cold == {
        "model": llama_dir,
        "device": "cpu",
        "quantize_4bit": False,
        "loaded": False,
        "memory_bytes": None,
    }
    warm = generator_info(cfg, load=True)
    model = _GENERATORS[(llama_dir, "cpu", False)].backend.model
    assert warm["loaded"] and warm["memory_bytes"] == _param_bytes(model) > 0
    assert generator_info(cfg)["memory_bytes"] == warm["memory_bytes"]  # loaded now: reported without asking
    # `auto` quantises on CUDA only
    auto = generator_info(GenerateConfig(model=llama_dir, device="cpu"))
    assert auto["quantize_4bit"] is False


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_4bit_footprint_is_smaller(index_dir: Path, llama_dir: str) -> None:
    sizes = {}
    for quantize in (False, True):
        # float32 against NF4 with a float32 compute dtype (`auto` would be bf16 on a bf16 CPU)
        gen = {"generate.model": llama_dir, "generate.quantize": quantize, "generate.dtype": "float32"}
        with Pipeline.load(index_dir, **gen) as p:
            g = p.info(generator_memory=True)["generator"]
        assert g["model"] == llama_dir and g["quantize_4bit"] is quantize and g["loaded"]
        backend = _GENERATORS[(llama_dir, "auto", quantize)].backend
        assert g["memory_bytes"] == memory_footprint(backend) == backend.model.get_memory_footprint()
        sizes[quantize] = g["memory_bytes"]
    assert sizes[True] < sizes[False]
    # the 14 projection matrices go from 4 bytes to half a byte per weight (plus per-block scales)
    import bitsandbytes as bnb

    model = _GENERATORS[(llama_dir, "auto", True)].backend.model
    n_quantized = sum(
        m.in_features * m.out_features for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)
    )
    assert sizes[False] - sizes[True] >= n_quantized * 3


def test_cli_info_shows_generator(index_dir: Path, llama_dir: str) -> None:
    from typer.testing import CliRunner

    from mmrag.cli import app

    runner = CliRunner()
    r = runner.invoke(app, ["info", "--index", str(index_dir), "--json", "-g", llama_dir, "--no-quant"])
    assert r.exit_code == 0, r.output
    g = json.loads(r.stdout)["generator"]
    assert g["model"] == llama_dir and g["quantize_4bit"] is False
    r = runner.invoke(
        app,
        ["info", "--index", str(index_dir), "--json", "-g", llama_dir, "--no-quant", "--generator-memory"],
    )
    assert r.exit_code == 0, r.output
    g = json.loads(r.stdout)["generator"]
    backend = _GENERATORS[(llama_dir, "auto", False)].backend
    assert g["loaded"] and g["memory_bytes"] == backend.model.get_memory_footprint()
    r = runner.invoke(app, ["info", "--index", str(index_dir), "-g", llama_dir, "--no-quant"])
    assert r.exit_code == 0, r.output
    assert f"generator  {llama_dir}" in r.stdout and f"memory={g['memory_bytes'] / 1e6:.1f} MB" in r.stdout
