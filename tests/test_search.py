"""The search tool: both backends, exclusions, the cache, the pool, hostile queries, errors."""

from __future__ import annotations

import json

import pytest
from helpers import PASSAGES
from hypothesis import given, settings
from hypothesis import strategies as st

from minisearch.errors import UserError
from minisearch.records import make_passage
from minisearch.search import build_index, index_info, open_searcher

BACKENDS = ["whoosh", "bm25s"]
HOSTILE = ['"unclosed', "title:Velkaran AND(", "*", "?", "", "   ", "x" * 10_000, "Velkaran " * 2000,
           "ÄÖÜ 東京 \ud800 \udfff", "NOT OR AND", "(((", "a:b:c", "\x00", "the of and", "river~2",
           "Velkaran^10", "[a TO z]", "{}", "\\", "'; DROP TABLE", "🙂" * 50, "Velk*", None, 42]


@pytest.fixture(params=BACKENDS)
def index_dir(request, tmp_path, passages):
    build_index(passages, tmp_path / "idx", backend=request.param)
    return tmp_path / "idx"


def ids(hits):
    return [h.id for h in hits]


def test_finds_the_right_passage(index_dir):
    with open_searcher(index_dir) as s:
        assert s.search(["Velkaran River length"], k=3)[0][0].id == "p1"
        assert s.search(["who founded Vethmora Holdings"], k=1)[0][0].id == "p4"
        top = s.search(["Quorvelle Dantrisk born"], k=3)[0]
        assert top[0].id == "p3" and top[0].title == "Quorvelle Dantrisk"
        assert "14 March 1873" in top[0].text and top[0].contents.startswith("Quorvelle Dantrisk\n")
        assert s.search(["nonexistentword"], k=3) == [[]]


def test_stemming_matches_other_word_forms(index_dir):
    with open_searcher(index_dir) as s:
        assert "p4" in ids(s.search(["founding of shipping companies"], k=2)[0])


def test_k_and_scores_ordered(index_dir):
    with open_searcher(index_dir) as s:
        hits = s.search(["Ostrivel"], k=3)[0]
        assert len(hits) == 3
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert len(s.search(["Ostrivel"], k=10)[0]) == 5  # only five passages say Ostrivel


def test_exclude_ids_never_returned_and_k_still_filled(index_dir):
    with open_searcher(index_dir) as s:
        full = ids(s.search(["Ostrivel"], k=4)[0])
        got = s.search(["Ostrivel", "Ostrivel"], k=3, exclude_ids=[{full[0]}, None])
        assert full[0] not in ids(got[0]) and len(got[0]) == 3
        assert ids(got[0]) == full[1:4]
        assert ids(got[1]) == full[:3]
        assert s.search(["Ostrivel"], k=3, exclude_ids=[full[0]]) == [got[0]]  # a lone id, not its letters


def test_batch_equals_one_by_one(index_dir):
    queries = ["Velkaran", "glass bottles", "Ostrivel city", "Velkaran", "shipping 1901"]
    with open_searcher(index_dir) as s:
        batch = s.search(queries, k=2)
    with open_searcher(index_dir) as s:
        single = [s.search([q], k=2)[0] for q in queries]
    assert batch == single


def test_cache_hits_on_repeats_and_word_order(index_dir):
    with open_searcher(index_dir) as s:
        s.search(["Ostrivel city"], k=3)
        s.search(["CITY ostrivel"], k=3)  # same terms, other order and case
        s.search(["Ostrivel city"], k=2)  # fewer hits: served from the cache
        assert s.cache_hits == 2 and s.lookups == 3
        s.search(["Ostrivel city"], k=6)  # more hits than cached: looked up again
        assert s.cache_hits == 2
        s.search(["Ostrivel city"], k=9)  # only 5 exist, and the cache knows it
        assert s.cache_hits == 3
        assert s.cache_hit_rate == 3 / 5


def test_cache_is_bounded(index_dir):
    with open_searcher(index_dir, cache_size=2) as s:
        s.search(["Velkaran"], k=1)
        s.search(["Ostrivel"], k=1)
        s.search(["glass"], k=1)
        assert len(s.cache) == 2


@pytest.mark.parametrize("query", HOSTILE)
def test_hostile_queries_never_raise(index_dir, query):
    with open_searcher(index_dir) as s:
        hits = s.search([query], k=3, exclude_ids=[["p1"]])[0]
    assert all(h.id != "p1" for h in hits)


def test_query_syntax_is_not_interpreted(index_dir):
    with open_searcher(index_dir) as s:
        # `title:` and AND are words here, not field or boolean syntax
        assert s.search(["title:Zimbrathe AND glass"], k=1)[0][0].id in {"p5", "p6"}
        assert s.search(["NOT Velkaran"], k=1)[0][0].id == "p1"


@pytest.fixture(scope="module")
def whoosh_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shared") / "idx"
    build_index(PASSAGES, folder)
    return folder


@settings(max_examples=60, deadline=None)
@given(queries=st.lists(st.text(max_size=200), min_size=1, max_size=4))
def test_any_text_is_safe(whoosh_dir, queries):
    with open_searcher(whoosh_dir) as s:
        out = s.search(queries, k=3)
    assert len(out) == len(queries) and all(len(h) <= 3 for h in out)


def test_process_pool_gives_the_same_results(tmp_path, passages):
    build_index(passages, tmp_path / "idx")
    queries = [f"{w} {i}" for i in range(20) for w in ("Velkaran", "glass", "Ostrivel")]
    with open_searcher(tmp_path / "idx") as serial:
        expected = serial.search(queries, k=3)
    with open_searcher(tmp_path / "idx", workers=2) as pooled:
        pooled.pool_min_batch = 4
        assert pooled.search(queries, k=3) == expected
        assert pooled.pool is not None


def test_bad_arguments(index_dir):
    with open_searcher(index_dir) as s:
        with pytest.raises(TypeError):
            s.search("a string, not a list")
        with pytest.raises(ValueError):
            s.search(["a", "b"], exclude_ids=[None])


def test_missing_index_says_how_to_build(tmp_path):
    with pytest.raises(UserError, match="minisearch index build"):
        open_searcher(tmp_path / "nowhere")


def test_damaged_index_says_how_to_rebuild(index_dir):
    meta = json.loads((index_dir / "meta.json").read_text())
    for sub in ("whoosh", "bm25s"):
        target = index_dir / sub
        if target.exists():
            for f in target.rglob("*"):
                if f.is_file():
                    f.unlink()
    with pytest.raises(UserError, match="rebuild"):
        open_searcher(index_dir)
    (index_dir / "meta.json").write_text("{not json")
    with pytest.raises(UserError, match="rebuild"):
        open_searcher(index_dir)
    assert meta["passages"] == 6


def test_index_info(index_dir):
    info = index_info(index_dir)
    assert info["passages"] == 6 and info["backend"] in BACKENDS and info["disk_mb"] >= 0


def test_empty_corpus_is_an_error(tmp_path):
    with pytest.raises(UserError, match="no passages"):
        build_index([], tmp_path / "idx")


def test_multiprocess_indexing_matches_single(tmp_path, passages):
    many = [dict(p, id=f"{p['id']}-{i}") for i in range(40) for p in passages]
    build_index(many, tmp_path / "one")
    build_index(many, tmp_path / "two", procs=2)
    with open_searcher(tmp_path / "one") as a, open_searcher(tmp_path / "two") as b:
        assert len(a) == len(b) == 240
        qa, qb = a.search(["Velkaran"], k=100)[0], b.search(["Velkaran"], k=100)[0]
        assert len(qa) == 80 and sorted(ids(qa)) == sorted(ids(qb))


def test_real_text_titles_find_their_pages(tmp_path, realtext):
    sample = realtext[:3000]
    build_index(sample, tmp_path / "w")
    build_index(sample, tmp_path / "b", backend="bm25s")
    queries = [p["contents"].split("\n", 1)[0] for p in sample[::30]]
    want = [p["id"] for p in sample[::30]]
    with open_searcher(tmp_path / "w") as w, open_searcher(tmp_path / "b") as b:
        top_w = [ids(h) for h in w.search(queries, k=10)]
        top_b = [ids(h) for h in b.search(queries, k=10)]
    found_w = sum(x in h[:3] for x, h in zip(want, top_w)) / len(want)
    found_b = sum(x in h[:3] for x, h in zip(want, top_b)) / len(want)
    assert found_w > 0.8 and found_b > 0.7, (found_w, found_b)
    overlap = sum(len(set(a) & set(c)) / 10 for a, c in zip(top_w, top_b)) / len(want)
    assert overlap > 0.4


def test_very_common_terms_are_pruned_unless_asked_not_to(tmp_path):
    common = [make_passage(f"f{i}", f"Filler {i}", f"Passage {i} is about the harbour.") for i in range(300)]
    rare = make_passage("z", "Zimbrathe", "Zimbrathe has a harbour too.")
    build_index([*common, rare], tmp_path / "idx")
    with open_searcher(tmp_path / "idx") as pruned:
        assert ids(pruned.search(["harbour Zimbrathe"], k=400)[0]) == ["z"]  # 'harbour' is in every passage
        assert len(pruned.search(["harbour"], k=400)[0]) == 301  # nothing rarer: the term is kept
    with open_searcher(tmp_path / "idx", prune_df=None) as full:
        hits = full.search(["harbour Zimbrathe"], k=400)[0]
        assert len(hits) == 301 and hits[0].id == "z"
