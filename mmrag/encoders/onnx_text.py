"""Text queries through ONNX Runtime: the torch path's vectors without importing torch.

A cold `mmrag search` spent most of its seconds importing torch and transformers to embed one query.
A registered, pip-packaged text embedder that the plain transformers path runs (a BERT-type encoder,
mean pooling, no prompts: all-MiniLM-L6-v2 of the offline profile) has an *ONNX form*: the same
weights exported once, in float32, into `$MMRAG_CACHE/onnx/<model id>/` together with the tokenizer
exactly as the torch path configures it. Queries then go through `onnxruntime` and `tokenizers`:

    text -> tokenizers (truncation at the torch path's `max_length`, padding to the longest)
         -> ONNX graph (last hidden state) -> mean over the attention mask -> L2 normalisation

The export records the identity (size, modification time) of the weights it was made from and is
used only while they are unchanged; anything else (another model, a missing `onnx` package to make
the export, a GPU device) keeps the torch path. Vectors agree with torch's float32 ones to a cosine
of 1 - 1e-7, and with its bfloat16 ones (the offline profile on CPUs with native bf16) to 0.9999, over
the MultiHop-RAG dev queries (`tests/test_onnx_text.py`).

Example:
    >>> enc = onnx_query_encoder("sentence-transformers/all-MiniLM-L6-v2")  # doctest: +SKIP
    >>> enc.encode_queries(["who won?"]).shape  # doctest: +SKIP
    (1, 384)
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.encoders.base import l2_normalize
from mmrag.registry import cache_dir, get_model
from mmrag.types import MMRAGError

if TYPE_CHECKING:
    from mmrag.encoders.text import TextEmbedder

RECORD = "export.json"
WEIGHTS = "model.safetensors"
ONNX_TYPES = ("bert",)
"""`model_type`s whose export has been checked against the torch path (inputs: ids, mask, token types)."""


def export_dir(model_id: str) -> Path:
    """`$MMRAG_CACHE/onnx/<model id with / as -->`."""
    return cache_dir() / "onnx" / model_id.replace("/", "--")


def source_folder(model_id: str) -> Path | None:
    """The local folder of a text encoder that has an ONNX form, or None.

    It must be a registered model whose weights a pip package installed here (the offline profile's
    MiniLM; a folder or hub id of the user's keeps the torch path), hold safetensors weights and a
    `tokenizer.json`, be of a checked `model_type`, and be a transformer with mean pooling only (what
    `TextEmbedder` runs without sentence-transformers).
    """
    from mmrag.encoders.text import _mean_pooling_only

    desc = get_model(model_id)
    folder = desc.local_path() if desc is not None and desc.package else None
    if folder is None or not folder.is_dir():
        return None
    if not (folder / WEIGHTS).is_file() or not (folder / "tokenizer.json").is_file():
        return None
    try:
        model_type = json.loads((folder / "config.json").read_text()).get("model_type")
    except (OSError, ValueError):
        return None
    if model_type not in ONNX_TYPES:
        return None
    modules = folder / "modules.json"
    if modules.is_file() and not _mean_pooling_only(str(folder), modules, None):
        return None
    return folder


def _weights_identity(folder: Path) -> dict[str, Any]:
    st = (folder / WEIGHTS).stat()
    return {"weights": str((folder / WEIGHTS).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def cached_export(model_id: str) -> Path | None:
    """The export folder of `model_id` when it exists and was made from the weights installed now."""
    folder = source_folder(model_id)
    target = export_dir(model_id)
    if folder is None or not (target / "model.onnx").is_file():
        return None
    try:
        record = json.loads((target / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return target if record.get("source") == _weights_identity(folder) else None


def export(enc: TextEmbedder) -> Path:
    """Export a loaded torch `TextEmbedder` (transformers backend) to ONNX, float32, once.

    Written to a temporary folder and renamed into place, so a concurrent reader sees a whole
    export or none. Needs torch and the `onnx` package (`pip install onnx`).

    Raises:
        MMRAGError: the encoder has no ONNX form.
        ImportError: `onnx` is not installed.
    """
    import torch

    folder = source_folder(enc.model_id)
    if folder is None or enc.backend != "transformers":
        raise MMRAGError(f"{enc.model_id}: no ONNX form (a local BERT-type encoder with mean pooling)")
    import onnx  # noqa: F401 - torch's exporter needs it; fail before the work, with its name

    target = export_dir(enc.model_id)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=target.parent))
    try:
        model = type(enc.model).from_pretrained(folder, dtype=torch.float32).eval()  # fp32, on CPU
        names = ["input_ids", "attention_mask", "token_type_ids"]
        example = tuple(torch.ones((1, 4), dtype=torch.long) for _ in names)

        class Hidden(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.model = model

            def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
                return self.model(**dict(zip(names, inputs, strict=True))).last_hidden_state

        axes = {n: {0: "batch", 1: "tokens"} for n in [*names, "hidden"]}
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on its own operator choices
            torch.onnx.export(
                Hidden(),
                example,
                str(tmp / "model.onnx"),
                input_names=names,
                output_names=["hidden"],
                dynamic_axes=axes,
                opset_version=17,
                dynamo=False,
            )
        tok = enc.tokenizer.backend_tokenizer
        (tmp / "tokenizer.json").write_text(tok.to_str())
        record = {
            "model_id": enc.model_id,
            "dim": enc.dim,
            "max_length": enc.max_length,
            "pad_id": int(enc.tokenizer.pad_token_id or 0),
            "pad_token": str(enc.tokenizer.pad_token or "[PAD]"),
            "inputs": names,
            "source": _weights_identity(folder),
        }
        (tmp / RECORD).write_text(json.dumps(record, indent=2))
        old = target.with_name(target.name + ".old")
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


class OnnxTextEmbedder:
    """A text embedder (TextEncoder protocol) running an export made by `export`.

    Attributes:
        model_id: The exported model's id.
        dim: Embedding size.
        max_length: Token limit (the torch path's); longer texts are truncated.
        query_prefix: Always "" (models with prompts have no ONNX form).
        runtime: `"onnx"`.
    """

    runtime = "onnx"
    query_prefix = ""
    document_prefix = ""

    def __init__(self, folder: Path, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        record = json.loads((folder / RECORD).read_text())
        self.model_id: str = record["model_id"]
        self.dim = int(record["dim"])
        self.max_length = int(record["max_length"])
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_length)
        self.tokenizer.enable_padding(pad_id=int(record["pad_id"]), pad_token=str(record["pad_token"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3  # the exporter's shape notes are not the user's concern
        self.session = ort.InferenceSession(
            str(folder / "model.onnx"), opts, providers=["CPUExecutionProvider"]
        )
        self.inputs = [i.name for i in self.session.get_inputs()]

    def encode_text(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised."""
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for i in range(0, len(texts), batch_size):
            enc = self.tokenizer.encode_batch(list(texts[i : i + batch_size]))
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: feeds[k] for k in self.inputs})[0]
            m = mask[..., None].astype(np.float32)
            out.append((hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1e-9))
        return l2_normalize(np.concatenate(out))

    def encode_queries(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Queries: the same as `encode_text` (no query prefix)."""
        return self.encode_text(texts, batch_size)


def onnx_query_encoder(model_id: str) -> OnnxTextEmbedder | None:
    """The ONNX form of `model_id` when its export is cached and current, else None (nothing loaded)."""
    folder = cached_export(model_id)
    return OnnxTextEmbedder(folder) if folder is not None else None


def ensure_export(model_id: str, torch_encoder: Callable[[], Any]) -> bool:
    """Make the export of `model_id` if it has an ONNX form and none is cached (about 5 s, with the
    torch encoder `torch_encoder()` returns); True when a current export is there afterwards. Without
    the `onnx` package, or on any export failure, False: queries keep the torch path."""
    if cached_export(model_id) is not None:
        return True
    if source_folder(model_id) is None:
        return False
    try:
        export(torch_encoder())
    except (ImportError, MMRAGError, OSError, RuntimeError, ValueError):
        return False
    return cached_export(model_id) is not None


def onnx_form(model_id: str, torch_encoder: Callable[[], Any]) -> OnnxTextEmbedder | None:
    """The ONNX form of `model_id`, exported first when needed (`ensure_export`); None without one."""
    enc = onnx_query_encoder(model_id)
    if enc is None and source_folder(model_id) is not None and ensure_export(model_id, torch_encoder):
        enc = onnx_query_encoder(model_id)
    return enc


__all__ = [
    "OnnxTextEmbedder",
    "cached_export",
    "ensure_export",
    "export",
    "export_dir",
    "onnx_form",
    "onnx_query_encoder",
    "source_folder",
]
