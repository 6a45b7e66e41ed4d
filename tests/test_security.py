"""Security: no remote code or pickles, no network, no secrets shown or stored, no writes outside the index.

Also the upgrade path: an index written by another schema version is refused with a message that
says how to rebuild, and is left as it was.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from mmrag import Pipeline
from mmrag.cli import app
from mmrag.config import MMRAGConfig
from mmrag.index.folder import SCHEMA_VERSION, read_manifest
from mmrag.types import IndexMismatchError, MMRAGError

ROOT = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("mmrag", "connectors", "evals") for p in sorted((ROOT / d).rglob("*.py"))]
OFFLINE = {"encoders.ocr": False}
SECRET = "sk-test-9f3b1c7e-never-print-me"


def _calls(name: str) -> list[tuple[Path, int, str]]:
    """Source lines calling `name(` (with the call's text up to its closing line)."""
    out = []
    for path in SOURCES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for i, line in enumerate(lines):
            if re.search(rf"\b{re.escape(name)}\(", line) and not line.lstrip().startswith(("#", "def ")):
                call = " ".join(lines[i : i + 8])
                out.append((path.relative_to(ROOT), i + 1, call))
    return out


def test_trust_remote_code_is_never_on() -> None:
    assert SOURCES
    for path in SOURCES:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            m = re.search(r"trust_remote_code\s*=\s*([^,)\s]+)", line)
            assert m is None or m.group(1) == "False", f"{path}:{n}: {line.strip()}"


def test_remote_code_in_a_model_folder_never_runs(tmp_path: Path) -> None:
    """A local model whose config asks for its own Python code: refused, the code never imported."""
    from mmrag.encoders import load_image_encoder, load_text_encoder

    model = tmp_path / "evil-model"
    model.mkdir()
    marker = tmp_path / "ran.txt"
    (model / "config.json").write_text(
        json.dumps({"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig"}})
    )
    (model / "evil.py").write_text(f"open({str(marker)!r}, 'w').write('pwned')\n")
    for load in (load_image_encoder, load_text_encoder):
        with pytest.raises(MMRAGError, match="evil-model"):
            load(str(model), device="cpu")
    assert not marker.exists()


def test_weights_load_without_pickled_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # every torch.load in the library asks for weights_only=True ...
    loads = _calls("torch.load")
    assert loads
    for path, n, call in loads:
        assert "weights_only=True" in call, f"{path}:{n}: {call[:120]}"
    # ... and EfficientNet's packaged weights really load that way
    import torch

    from mmrag.encoders.efficientnet import load_efficientnet_lite0

    seen: list[Any] = []
    real = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("weights_only"))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    load_efficientnet_lite0()
    assert seen == [True]


def test_hub_models_load_from_safetensors_by_default() -> None:
    import inspect

    from mmrag.encoders.clip import DualEncoder
    from mmrag.encoders.text import TextEmbedder

    for cls in (DualEncoder, TextEmbedder):
        default = inspect.signature(cls.__init__).parameters["use_safetensors"].default
        assert default is True, f"{cls.__name__}: use_safetensors defaults to {default}"


def test_no_network_at_import(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, socket, sys
        attempts = []
        def refuse(kind):
            def call(*args, **kwargs):
                attempts.append([kind, repr(args)[:80]])
                raise OSError("network disabled by the test")
            return call
        real_connect = socket.socket.connect
        def connect(self, address):
            if self.family in (socket.AF_INET, socket.AF_INET6):
                return refuse("connect")(address)
            return real_connect(self, address)
        socket.socket.connect = connect
        socket.getaddrinfo = refuse("getaddrinfo")
        import mmrag, mmrag.cli, mmrag.pipeline, mmrag.retrieve.query, mmrag.ingest, mmrag.store
        import mmrag.encoders
        import mmrag.store.edge, mmrag.store.server, mmrag.registry, mmrag.generate
        print(json.dumps(attempts))
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_no_network_while_indexing_and_searching(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[Any] = []
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        if self.family in (socket.AF_INET, socket.AF_INET6):
            attempts.append(address)
            raise OSError("network disabled by the test")
        return real_connect(self, address)

    def getaddrinfo(*args: Any, **kwargs: Any) -> Any:
        attempts.append(args[:2])
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    doc = tmp_path / "note.txt"
    doc.write_text("The lighthouse keeper logged three storms in October.")
    with Pipeline.from_config(profile="offline", index=tmp_path / "idx", **OFFLINE) as p:
        p.index([doc])
    with Pipeline.load(tmp_path / "idx") as p:
        assert p.search("storms at the lighthouse", k=1)[0].path == str(doc)
    assert attempts == []


def _all_text_under(folder: Path) -> bytes:
    return b"".join(f.read_bytes() for f in sorted(folder.rglob("*")) if f.is_file())


def test_api_key_stays_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("MMRAG_QDRANT_API_KEY", SECRET)
    monkeypatch.setenv("MMRAG_ENCODERS_OCR", "0")
    caplog.set_level(logging.DEBUG)
    cfg = MMRAGConfig.load(profile="offline")
    assert cfg.store.api_key == SECRET  # it is read ...
    assert SECRET not in repr(cfg) and SECRET not in json.dumps(cfg.to_dict())  # ... and never shown
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("Harbour cranes unloaded the container ship overnight.")
    idx = str(tmp_path / "idx")
    runner = CliRunner()
    outputs = []
    for args in (
        ["index", str(corpus), "--index", idx, "--profile", "offline", "--json"],
        ["index", str(corpus), "--index", idx, "--no-progress"],
        ["search", "container ship", "--index", idx, "--json"],
        ["search", "container ship", "--index", idx],
        ["info", "--index", idx, "--json"],
        [
            "index",
            str(corpus),
            "--index",
            str(tmp_path / "srv"),
            "--profile",
            "offline",
            "--qdrant-url",
            ":memory:",
        ],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
        outputs.append(r.stdout + r.stderr)
    assert all(SECRET not in o for o in outputs)
    assert SECRET.encode() not in _all_text_under(tmp_path / "idx")  # manifest, file table, store
    manifest = read_manifest(tmp_path / "srv")
    assert manifest is not None and "api_key" not in manifest["config"]["store"]
    assert SECRET not in json.dumps(manifest)
    assert all(SECRET not in rec.getMessage() for rec in caplog.records)
    with Pipeline.load(idx) as p:  # the key comes back from the environment, not from the manifest
        assert p.config.store.api_key == SECRET


def _tree(root: Path, skip: Path) -> dict[str, tuple[int, int]]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = [d for d in dirnames if here / d != skip]
        for name in dirnames:
            out[str(here / name)] = (0, 0)  # a folder's own mtime changes when idx is made inside it
        for name in filenames:
            st = os.lstat(here / name)
            out[str(here / name)] = (st.st_size, st.st_mtime_ns)
    return out


def test_writes_stay_inside_the_index_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "root"
    corpus = root / "data" / "corpus"
    (corpus / "sub").mkdir(parents=True)
    (corpus / "sub" / "notes..txt").write_text("A file whose name holds two dots.")
    (corpus / "records.json").write_text(
        json.dumps([{"body": "Tidal power in the bay.", "path": "../../../outside.txt", "file_hash": "x"}])
    )
    work = root / "work" / "deep"
    work.mkdir(parents=True)
    idx = root / "work" / "idx"
    monkeypatch.chdir(work)
    before = _tree(root, skip=idx)
    with Pipeline.from_config(profile="offline", index="../idx", **OFFLINE) as p:
        report = p.index(["../../data/corpus/sub/../../corpus", "../../data/../data/corpus/records.json"])
        assert report.files_indexed == 2 and not report.errors
        hits = p.search("tidal power", k=1)
        # a record's own "path" field never replaces where the point came from
        assert hits[0].path == str(corpus / "records.json") and hits[0].payload["file_hash"] != "x"
    assert _tree(root, skip=idx) == before  # nothing written, touched or created outside idx
    assert (idx / "manifest.json").is_file()
    assert not (tmp_path / "outside.txt").exists()


def _old_index(tmp_path: Path, version: Any) -> Path:
    idx = tmp_path / f"v{version}"
    doc = tmp_path / "doc.txt"
    doc.write_text("Glaciers retreated twelve metres last year.")
    with Pipeline.from_config(profile="offline", index=idx, **OFFLINE) as p:
        p.index([doc])
    manifest = json.loads((idx / "manifest.json").read_text())
    manifest["schema_version"] = version
    (idx / "manifest.json").write_text(json.dumps(manifest))
    return idx


@pytest.mark.parametrize("version", [0, SCHEMA_VERSION + 1, None])
def test_other_schema_version_is_refused_with_how_to_rebuild(tmp_path: Path, version: Any) -> None:
    idx = _old_index(tmp_path, version)
    saved = (idx / "manifest.json").read_bytes()
    with pytest.raises(IndexMismatchError, match=r"schema version .* rebuild it: mmrag index"):
        Pipeline.load(idx)
    with pytest.raises(IndexMismatchError, match="rebuild"):
        Pipeline.from_config(profile="offline", index=idx, **OFFLINE)
    runner = CliRunner()
    for args in (
        ["search", "glaciers", "--index", str(idx)],
        ["index", str(tmp_path / "doc.txt"), "--index", str(idx)],
    ):
        r = runner.invoke(app, args)
        assert r.exit_code == 2 and "rebuild" in r.stderr, (args, r.output)
    assert (idx / "manifest.json").read_bytes() == saved  # refused, not overwritten
