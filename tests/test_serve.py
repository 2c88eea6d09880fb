"""`minisearch serve`: the Search-R1 API's shape, its bounds, and search over HTTP equal to
search of the folder."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from click.testing import CliRunner
from test_search import HOSTILE

from minisearch.cli import main
from minisearch.errors import UserError
from minisearch.search import build_index, open_searcher, read_meta
from minisearch.search.remote import RemoteSearcher, endpoints
from minisearch.search.server import Limits, background, make_app

LIMITS = Limits(max_body=20_000, max_queries=8, max_query_chars=300, max_topk=10)


@pytest.fixture(scope="module", params=["whoosh", "bm25s"])
def served(request, tmp_path_factory):
    """(index folder, URL of a live server over it)."""
    from helpers import PASSAGES

    folder = tmp_path_factory.mktemp(request.param) / "idx"
    build_index(PASSAGES, folder, backend=request.param)
    with open_searcher(folder) as searcher, background(make_app(searcher, read_meta(folder), LIMITS)) as url:
        yield folder, url


def post(url, body, raw=False):
    return httpx.post(url, content=body if raw else json.dumps(body), timeout=10)


def test_api_shape_with_and_without_scores(served):
    folder, url = served
    with_scores = post(url, {"queries": ["Velkaran River length", "Vethmora Holdings"], "topk": 2,
                             "return_scores": True}).json()["result"]
    assert len(with_scores) == 2 and all(len(row) == 2 for row in with_scores)
    top = with_scores[0][0]
    assert set(top) == {"document", "score"} and set(top["document"]) == {"id", "contents"}
    assert top["document"]["id"] == "p1" and top["document"]["contents"].startswith("Velkaran River\n")
    assert isinstance(top["score"], float) and top["score"] >= with_scores[0][1]["score"]
    bare = post(url, {"queries": ["Velkaran River length"], "topk": 2}).json()["result"]
    assert bare[0] == [hit["document"] for hit in with_scores[0]]


def test_single_query_variants(served):
    _, url = served
    many = post(url, {"queries": ["who founded Vethmora Holdings"], "topk": 1}).json()
    for body in ({"query": "who founded Vethmora Holdings", "topk": 1},
                 {"query": "who founded Vethmora Holdings", "top_k": 1}):
        assert post(url, body).json() == many


def test_health_names_the_index(served):
    _, url = served
    health = httpx.get(endpoints(url)[1]).json()
    assert health["status"] == "ok" and health["passages"] == 6 and health["backend"] in ("whoosh", "bm25s")
    assert health["limits"]["max_queries"] == LIMITS.max_queries


@pytest.mark.parametrize("body, status, says", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b"\xff\xfe", 400, "not JSON"),
    (json.dumps({"topk": 3}).encode(), 400, "no \"queries\""),
    (json.dumps({"queries": "Velkaran"}).encode(), 400, "list of strings"),
    (json.dumps({"queries": ["a"] * 10_000}).encode(), 413, "at most 20000"),  # the body limit first
    (json.dumps({"queries": ["a"] * 9}).encode(), 413, "at most 8"),
    (json.dumps({"queries": ["Velkaran"], "topk": 10**6}).encode(), 400, "topk"),
    (json.dumps({"queries": ["Velkaran"], "topk": 0}).encode(), 400, "topk"),
    (json.dumps({"queries": ["Velkaran"], "topk": "3"}).encode(), 400, "topk"),
    (json.dumps({"queries": ["Velkaran", 42]}).encode(), 400, "query 1 is a int"),
    (json.dumps({"queries": [None]}).encode(), 400, "query 0 is a NoneType"),
    (json.dumps({"queries": [["nested"]]}).encode(), 400, "not a string"),
    (json.dumps({"queries": ["x" * 301]}).encode(), 413, "at most 300"),
    (json.dumps({"queries": ["a"], "return_scores": "yes"}).encode(), 400, "return_scores"),
    (json.dumps({"queries": ["a"], "exclude_ids": [["p1"], ["p2"]]}).encode(), 400, "exclude_ids"),
    (b"x" * 30_000, 413, "at most 20000"),
    (b'{"queries": ' + b"[" * 9_000 + b"]" * 9_000 + b"}", 400, "nests too deep"),  # under the body limit
    (b"[" * 10_000, 400, "nests too deep"),
])
def test_bad_requests_get_a_4xx_and_the_server_stays_up(served, body, status, says):
    _, url = served
    response = post(url, body, raw=True)
    assert response.status_code == status and says in response.json()["error"]
    assert post(url, {"queries": ["Velkaran River"], "topk": 1}).json()["result"][0][0]["id"] == "p1"


def test_unknown_endpoints_and_methods_are_json_errors(served):
    _, url = served
    base = url.rsplit("/", 1)[0]
    for response in (httpx.get(url), httpx.post(base + "/search", json={})):
        assert response.status_code in (404, 405) and "POST /retrieve" in response.json()["error"]


def test_remote_search_equals_local(served):
    folder, url = served
    queries = ["Velkaran River length", "who founded Vethmora Holdings", "Quorvelle Dantrisk born", "river",
               "nonexistentword"] + [q for q in HOSTILE if not (isinstance(q, str) and len(q) > 300)]
    exclude = [["p1"] if i % 3 == 0 else None for i in range(len(queries))]
    with open_searcher(folder) as local, open_searcher(url) as remote:
        assert isinstance(remote, RemoteSearcher) and len(remote) == len(local)
        for k in (1, 3, 6):
            assert remote.search(queries, k=k) == local.search(queries, k=k)  # batches split to max_queries
            assert remote.search(queries, k=k, exclude_ids=exclude) == local.search(queries, k=k, exclude_ids=exclude)


def test_concurrent_clients_get_the_hits_of_their_own_queries(served):
    """The server takes one batch at a time; under 10 clients at once nothing fails or mixes."""
    from concurrent.futures import ThreadPoolExecutor

    folder, url = served
    pool = ["Velkaran River", "Ostrivel city", "Quorvelle Dantrisk", "Vethmora Holdings", "glass works", "village"]
    batches = [[pool[(i + j) % len(pool)] for j in range(1 + i % 4)] for i in range(60)]
    with open_searcher(folder) as local, RemoteSearcher(url) as remote, ThreadPoolExecutor(10) as clients:
        got = list(clients.map(lambda b: remote.search(b, k=2), batches))
        assert got == [local.search(b, k=2) for b in batches]


def test_a_url_works_where_an_index_folder_does(served):
    folder, url = served
    runner = CliRunner()
    by_folder = runner.invoke(main, ["index", "search", str(folder), "Vethmora", "founder", "--json"])
    by_url = runner.invoke(main, ["index", "search", url, "Vethmora", "founder", "--json"])
    assert by_url.exit_code == 0 and by_url.output == by_folder.output and '"p4"' in by_url.output
    info = runner.invoke(main, ["index", "info", url])
    assert info.exit_code == 0 and "passages: 6" in info.output
    assert read_meta(url)["backend"] == read_meta(folder)["backend"]


class Clock:
    """The `time` module for the client, its backoff sleeps recorded instead of slept."""

    def __init__(self):
        self.waits = []

    def sleep(self, seconds):
        self.waits.append(seconds)

    def __getattr__(self, name):
        return getattr(time, name)


@pytest.fixture
def clock(monkeypatch):
    import minisearch.search.remote as remote

    clock = Clock()
    monkeypatch.setattr(remote, "time", clock)
    return clock


def test_a_server_that_is_down_is_named(clock):
    searcher = RemoteSearcher("http://127.0.0.1:9/retrieve", timeout=1, retries=2, backoff=0.01)
    with pytest.raises(UserError, match=r"127\.0\.0\.1:9/(retrieve|health) is not answering after 3 tries"):
        searcher.search(["Velkaran"], k=1)
    assert clock.waits == [0.01, 0.02]  # the backoff doubles between tries
    result = CliRunner().invoke(main, ["index", "info", "http://127.0.0.1:9"])
    assert result.exit_code != 0 and "minisearch serve" in result.output
    assert len(clock.waits) > 2  # the CLI's client retried too, on the recorded clock


def test_a_failing_server_is_retried(served, clock):
    """Two 503s, then an answer: the client waits and gets the same hits."""
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    folder, url = served
    calls = []

    async def flaky(request):
        calls.append(1)
        if len(calls) <= 2:
            return JSONResponse({"error": "busy"}, status_code=503)
        return JSONResponse(httpx.post(url, content=await request.body()).json())

    with background(Starlette(routes=[Route("/retrieve", flaky, methods=["POST"])])) as flaky_url, \
            open_searcher(folder) as local:
        remote = RemoteSearcher(flaky_url, retries=3, backoff=0.01)
        assert remote.search(["Velkaran River"], k=2) == local.search(["Velkaran River"], k=2)
        assert len(calls) == 3 and len(remote) == 0  # no /health there: size unknown, default batches
        assert clock.waits == [0.01, 0.02]


def test_serve_help_is_built():
    out = CliRunner().invoke(main, ["serve", "--help"]).output
    assert "not built" not in out and "--host" in out and "127.0.0.1" in out


def test_serve_takes_its_address_from_settings(monkeypatch):
    """host, port and workers are ServeConfig's settings: local by default, checked like any other."""
    import minisearch.search.server as server

    got = []
    monkeypatch.setattr(server, "serve", lambda cfg, echo: got.append(cfg))
    assert CliRunner().invoke(main, ["serve", "idx"]).exit_code == 0
    assert got[-1] == server.ServeConfig(index="idx") and got[-1].host == "127.0.0.1" and got[-1].port == 8000
    assert CliRunner().invoke(main, ["serve", "idx", "--host", "0.0.0.0", "--port", "9001", "--workers", "2",
                                     "--max-topk", "5"]).exit_code == 0
    assert (got[-1].host, got[-1].port, got[-1].workers, got[-1].limits.max_topk) == ("0.0.0.0", 9001, 2, 5)
    result = CliRunner().invoke(main, ["serve", "idx", "--workers", "0"])
    assert result.exit_code == 2 and "workers=0: it must be at least 1" in result.output


def test_a_stage_searching_a_url_makes_what_the_folder_makes(tmp_path):
    """RAMP tasks kept by recoverability (every span searched) are the same over HTTP."""
    from minisearch.data.toyworld import build_world
    from minisearch.jsonl import read_jsonl, write_jsonl
    from minisearch.ramp.tasks import RampConfig
    from minisearch.ramp.tasks import run as ramp

    world = build_world(120, seed=1)
    write_jsonl(tmp_path / "passages.jsonl", world.passages)
    build_index(world.passages, tmp_path / "idx")
    made = {}
    with open_searcher(tmp_path / "idx") as searcher, \
            background(make_app(searcher, read_meta(tmp_path / "idx"))) as url:
        for name, index in (("folder", str(tmp_path / "idx")), ("url", url)):
            ramp(RampConfig(corpus=str(tmp_path / "passages.jsonl"), out=str(tmp_path / name), index=index),
                 echo=lambda *_: None)
            made[name] = list(read_jsonl(tmp_path / name / "train.jsonl"))
    assert made["url"] == made["folder"] and len(made["url"]) > 20
