"""clip8 eval: the suite's accuracy equals a direct computation with the same (tiny random) CLIP, and a
tower without a text side stops with the reason."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tiny_models import build_tiny_clip
from typer.testing import CliRunner

from mmrag.cli import app
from mmrag.encoders import aligned_image_space
from mmrag.evals.clip8 import EvalConfig, evaluate, load_captions
from mmrag.types import MMRAGError

CAPTIONS = ["a red square", "a blue sky", "green grass field", "a yellow sun", "grey stone wall"]


def _data(folder: Path, n: int = len(CAPTIONS), seed: int = 0) -> Path:
    """`n` random photos with captions in the clip8 subset, plus one image of another subset."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    entries = []
    for i in range(n + 1):
        name = f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (48, 40 + 4 * i, 3), dtype=np.uint8)).save(folder / name)
        subset = "clip8" if i < n else "docstring_extra"
        entries.append({"image": name, "caption": CAPTIONS[i % len(CAPTIONS)], "subset": subset})
    (folder / "captions.json").write_text(json.dumps(entries))
    return folder


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("models") / "clip", seed=3)


def _reference_rankings(model_dir: Path, folder: Path) -> dict[str, list[str]]:
    """Caption -> image names by falling cosine, computed with transformers directly."""
    import torch
    from transformers import CLIPModel, CLIPProcessor

    entries = load_captions(folder)
    model = CLIPModel.from_pretrained(model_dir).eval()
    proc = CLIPProcessor.from_pretrained(model_dir)
    images = [Image.open(folder / e["image"]).convert("RGB") for e in entries]
    with torch.no_grad():
        img = model.get_image_features(**proc(images=images, return_tensors="pt")).pooler_output
        txt = [
            model.get_text_features(
                **proc.tokenizer([e["caption"]], truncation=True, return_tensors="pt")
            ).pooler_output[0]
            for e in entries
        ]
    img = torch.nn.functional.normalize(img, dim=-1)
    sims = torch.nn.functional.normalize(torch.stack(txt), dim=-1) @ img.T
    names = [e["image"] for e in entries]
    return {e["caption"]: [names[j] for j in sims[i].argsort(descending=True)] for i, e in enumerate(entries)}


def test_accuracy_equals_the_reference_computation(tiny_clip: Path, tmp_path: Path) -> None:
    folder = _data(tmp_path / "data")
    runs = tmp_path / "runs"
    args = ["eval", "clip8", "--image-model", str(tiny_clip), "--data", str(folder), "--runs", str(runs)]
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    ref = _reference_rankings(tiny_clip, folder)
    rows = [json.loads(line) for line in (Path(out["run"]) / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == len(CAPTIONS) == out["images"]  # the other subset's image is not in the gallery
    for row in rows:
        assert row["text-to-image"]["ranking"] == ref[row["caption"]]
    top1 = sum(ref[row["caption"]][0] == row["image"] for row in rows) / len(rows)
    assert out["configs"]["text-to-image"]["top1"] == pytest.approx(top1, abs=1e-4)
    assert out["models"]["aligned_text"] is True and out["chance"] == pytest.approx(
        1 / len(CAPTIONS), abs=1e-4
    )
    assert (Path(out["run"]) / "sweep.png").is_file()


def test_a_tower_without_a_text_side_stops_with_the_reason(tmp_path: Path) -> None:
    folder = _data(tmp_path / "data", n=2)
    assert not aligned_image_space("efficientnet-lite0")
    with pytest.raises(MMRAGError, match="no caption can be embedded") as e:
        evaluate(
            EvalConfig(data=str(folder), profile="offline", runs=str(tmp_path / "runs")), show_table=False
        )
    assert "--tag-baseline" in str(e.value)
    assert not (tmp_path / "runs").exists()  # stopped before indexing anything
    r = CliRunner().invoke(app, ["eval", "clip8", "--data", str(folder), "--runs", str(tmp_path / "runs")])
    assert r.exit_code != 0 and "text side" in r.output


def test_load_captions_names_the_problem(tmp_path: Path) -> None:
    folder = _data(tmp_path / "data", n=2)
    assert [c["image"] for c in load_captions(folder)] == ["img0.png", "img1.png"]
    with pytest.raises(MMRAGError, match="at least 2"):
        load_captions(folder, subset="docstring_extra")
    (folder / "img0.png").unlink()
    with pytest.raises(MMRAGError, match=r"img0\.png not found"):
        load_captions(folder)
    with pytest.raises(MMRAGError, match="captions.json"):
        evaluate(EvalConfig(data=str(tmp_path / "nowhere")), show_table=False)
