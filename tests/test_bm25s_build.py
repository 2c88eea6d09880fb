"""The streamed bm25s build gives the index bm25s's own in-memory build gives."""

from __future__ import annotations

import json

import numpy as np
import pytest

bm25s = pytest.importorskip("bm25s")

from minisearch.search import build_index, open_searcher  # noqa: E402
from minisearch.search.bm25s_build import build  # noqa: E402
from minisearch.search.bm25s_terms import Analyzer  # noqa: E402


def reference(passages, folder):
    """bm25s's own build of the same terms (what minisearch did before the streamed build)."""
    analyze = Analyzer()
    retriever = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    retriever.index([analyze(p["contents"]) for p in passages], show_progress=False)
    retriever.save(str(folder), show_progress=False)
    return bm25s.BM25.load(str(folder), mmap=False, show_progress=False)


def top10(retriever, vocab, queries, analyze):
    out = []
    for q in queries:
        ids = [vocab[t] for t in analyze(q) if t in vocab]
        docs, scores = retriever.retrieve([ids], k=10, show_progress=False)
        out.append((docs[0].tolist(), scores[0].tolist()))
    return out


@pytest.mark.parametrize("runs", [1, 7])
def test_same_scores_and_top10_as_bm25s(tmp_path, realtext, toy_world, runs):
    passages = realtext[:1500] + toy_world.passages
    nnz = sum(len(set(Analyzer()(p["contents"]))) for p in passages)
    build(iter(passages), tmp_path / "ours", run_entries=-(-nnz // runs), block_entries=nnz // 5 + 1,
          progress=False)
    theirs = reference(passages, tmp_path / "theirs")
    ours = bm25s.BM25.load(str(tmp_path / "ours" / "bm25s"), mmap=True, show_progress=False)
    assert not (tmp_path / "ours" / "build.tmp").exists()
    # the same matrix, column for column (term ids differ: map ours onto theirs)
    v_ours, v_theirs = ours.vocab_dict, {t: i for t, i in theirs.vocab_dict.items() if t}
    assert set(v_ours) == set(v_theirs)
    for term in list(v_ours)[::97]:
        a, b = v_ours[term], v_theirs[term]
        sa = slice(ours.scores["indptr"][a], ours.scores["indptr"][a + 1])
        sb = slice(theirs.scores["indptr"][b], theirs.scores["indptr"][b + 1])
        assert np.array_equal(ours.scores["indices"][sa], theirs.scores["indices"][sb])
        assert np.array_equal(ours.scores["data"][sa], theirs.scores["data"][sb])  # bit for bit
    analyze = Analyzer()
    queries = [p["contents"].split("\n", 1)[0] for p in passages[::40]] + [
        "river length", "founded in", "the university of", "born 1873 in", "capital city population"]
    assert top10(ours, v_ours, queries, analyze) == top10(theirs, v_theirs, queries, analyze)
    if runs == 1:
        pytest.importorskip("numba")
        compiled = bm25s.BM25.load(str(tmp_path / "ours" / "bm25s"), mmap=True, show_progress=False, backend="numba")
        # numba (what big indexes use) breaks ties in another order: the same scores, the same
        # passages above the tenth score
        for (d1, s1), (d2, s2) in zip(top10(compiled, v_ours, queries, analyze), top10(ours, v_ours, queries, analyze)):
            assert s1 == s2 and {d for d, s in zip(d1, s1) if s > s1[-1]} == {d for d, s in zip(d2, s2) if s > s2[-1]}


def test_index_through_the_searcher(tmp_path, toy_world):
    build_index(toy_world.passages, tmp_path / "idx", backend="bm25s")
    first = toy_world.passages[0]
    title = first["contents"].split("\n", 1)[0]
    with open_searcher(tmp_path / "idx") as s:
        assert len(s) == len(toy_world.passages)
        assert s.search([title], k=3)[0][0].id in (first["id"], first["id"] + "-r")  # the lead or its records
    params = json.loads((tmp_path / "idx" / "bm25s" / "params.index.json").read_text())
    assert params["num_docs"] == len(toy_world.passages) and params["method"] == "lucene"
