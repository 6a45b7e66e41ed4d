"""ColPali and ColQwen2 page encoders on tiny random models: loading by folder, masked rows, patch rows,
and MaxSim against transformers' own `score_retrieval` and against numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from tiny_retrievers import tiny_colpali, tiny_colqwen2  # noqa: E402

from mmrag.encoders import describe, load_page_encoder  # noqa: E402
from mmrag.store.multivector import hierarchical_pool, maxsim  # noqa: E402
from mmrag.types import MMRAGError  # noqa: E402

BUILDERS = {"colpali": tiny_colpali, "colqwen2": tiny_colqwen2}
PAGES = [
    Image.new("RGB", (24, 32), (250, 250, 250)),
    Image.new("RGB", (16, 16), (10, 10, 200)),
    Image.new("RGB", (32, 20), (200, 10, 10)),
]


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    family = request.param
    return family, BUILDERS[family](tmp_path_factory.mktemp(family) / family)


def test_pages_and_queries_match_the_reference(folder: tuple[str, Path]) -> None:
    family, path = folder
    desc = describe(str(path), "page")
    assert desc.family == family and desc.dim == 16 and desc.roles == ("page",)
    with pytest.raises(MMRAGError, match="page encoder"):
        describe(str(path), "image")
    enc = load_page_encoder(str(path), device="cpu")
    pages = enc.encode_pages(PAGES, batch_size=2)
    one_by_one = [enc.encode_pages([im])[0] for im in PAGES]
    for p, q in zip(pages, one_by_one, strict=True):
        # batching pads; the kept rows are the page's own and padding never leaks into them
        assert p.vectors.shape == q.vectors.shape and np.allclose(p.vectors, q.vectors, atol=1e-4)
        assert np.allclose(np.linalg.norm(p.vectors, axis=1), 1, atol=1e-4)
        assert p.patches.dtype == bool and 0 < p.patches.sum() < len(p.vectors)
    if family == "colpali":
        assert all(int(p.patches.sum()) == 16 for p in pages)  # 8 px / 2 px patches
    else:
        grids = enc.processor.process_images(images=PAGES)["image_grid_thw"]
        assert [int(p.patches.sum()) for p in pages] == [int(g.prod()) // 4 for g in grids]  # 2x2 merge
    queries = enc.encode_queries(["what is the revenue", "red"])
    assert all(q.shape[1] == 16 for q in queries)
    ref = enc.processor.score_retrieval(
        [torch.from_numpy(q) for q in queries], [torch.from_numpy(p.vectors) for p in pages]
    )
    ours = np.array([[maxsim(q, p.vectors) for p in pages] for q in queries])
    assert np.allclose(ours, ref.float().numpy(), atol=1e-4)
    # the page image reaches the vectors
    assert not np.allclose(pages[1].vectors[pages[1].patches][:4], pages[2].vectors[pages[2].patches][:4])
    pooled = hierarchical_pool(pages[0].vectors, 2, pool=pages[0].patches)
    kept = int((~pages[0].patches).sum())
    assert len(pooled) == -(-int(pages[0].patches.sum()) // 2) + kept
