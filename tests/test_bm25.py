"""The BM25 encoder: qdrant-edge's English analyzer (stemming, stop words) giving TF weights."""

from __future__ import annotations

import pytest

from mmrag.encoders.bm25 import Bm25Encoder
from mmrag.types import MMRAGError


@pytest.fixture(scope="module")
def enc() -> Bm25Encoder:
    return Bm25Encoder()


def test_stemming_shares_tokens(enc: Bm25Encoder):
    running, runs = enc.embed_query("running"), enc.embed_query("runs")
    assert running.indices == runs.indices
    assert len(running.indices) == 1
    assert enc.embed_query("walking").indices != running.indices


def test_stop_words_dropped(enc: Bm25Encoder):
    assert enc.embed_query("the of and a").indices == []
    assert enc.embed_query("the fox").indices == enc.embed_query("fox").indices


def test_case_and_punctuation_ignored(enc: Bm25Encoder):
    assert enc.embed_query("Fox!").indices == enc.embed_query("fox").indices


def test_document_weights_are_tf(enc: Bm25Encoder):
    once, twice = enc.embed_documents(["fox jumps", "fox fox jumps"])
    w1 = dict(zip(once.indices, once.values, strict=True))
    w2 = dict(zip(twice.indices, twice.values, strict=True))
    fox = enc.embed_query("fox").indices[0]
    jump = enc.embed_query("jump").indices[0]
    # A repeated term weighs more, saturating below twice the weight (BM25's k).
    assert w1[fox] < w2[fox] < 2 * w1[fox]
    assert w1[fox] == pytest.approx(w1[jump])
    q = enc.embed_query("fox fox jumps")
    assert sorted(q.values) == [1.0, 1.0]


def test_empty_text(enc: Bm25Encoder):
    assert enc.embed_documents(["", "the"])[0].indices == []
    assert enc.embed_documents(["", "the"])[1].indices == []


def test_bad_language():
    with pytest.raises(MMRAGError, match="klingon"):
        Bm25Encoder(language="klingon")
