"""Model descriptions as data: one frozen record per supported model, listed by `mmrag models ls`.

A description names its family; the family names the module that loads it. No family is ever
guessed from a model-id string. The records live in one file per kind of model:

- `encoders.py`: image and text embedders, page retrievers (`mmrag.encoders`);
- `speech.py`: faster-whisper models (`mmrag.ingest.asr`);
- `generators.py`: text LLMs and vision-language models (`mmrag.generate`).

A model too large for one pip package is described with `parts` (`mmrag.registry.parts`): its
slices, the pinned packages that ship them, and the size and sha256 of the joined file, which
`assemble` checks before anything loads it.
"""

from __future__ import annotations

from pathlib import Path

from mmrag.registry.description import Family, ModelDescription, Role, cache_dir
from mmrag.registry.encoders import ENCODERS
from mmrag.registry.generators import GENERATORS
from mmrag.registry.parts import SlicedFile, assemble
from mmrag.registry.speech import SPEECH
from mmrag.types import MMRAGError

__all__ = [
    "Family",
    "ModelDescription",
    "Role",
    "SlicedFile",
    "assemble",
    "assemble_model",
    "cache_dir",
    "get_model",
    "list_models",
]

_REGISTRY: dict[str, ModelDescription] = {m.id: m for m in (*ENCODERS, *SPEECH, *GENERATORS)}


def list_models() -> list[ModelDescription]:
    """Every registered model description: encoders, speech models, the offline LLMs and the VLM
    generators mmrag is tested with (as tiny random models of each family). Any hub id or folder
    that is not registered still loads by path."""
    return list(_REGISTRY.values())


def get_model(model_id: str) -> ModelDescription | None:
    """The description of a registered model, or None."""
    return _REGISTRY.get(model_id)


def assemble_model(desc: ModelDescription) -> Path:
    """The verified cache folder of a model shipped in parts, joined from its pip packages the
    first time (`mmrag.registry.parts.assemble`).

    Raises:
        MMRAGError: `desc` is not shipped in parts, or a part is missing, or the joined file's size
            or hash is wrong (one line naming the pip command).
    """
    folder = desc.assembled_dir()
    if desc.parts is None or folder is None:
        raise MMRAGError(f"{desc.id} is not shipped in parts")
    return assemble(desc.id, desc.parts, folder)
