"""`minisearch serve INDEX`: an index over the Search-R1 retrieval API.

    POST /retrieve  {"queries": ["...", ...], "topk": 3, "return_scores": true}
                 -> {"result": [[{"document": {"id", "contents"}, "score"}, ...], ...]}
    GET  /health -> {"status": "ok", "passages", "backend", "source", "limits"}

The API is the one Search-R1's retrieval server, veRL's search tools and their kin speak:
one hit list per query, each hit `{"document": {...}, "score"}` with
`return_scores`, the bare documents without. Also accepted: one query as `{"query": "...",
"topk" or "top_k": k}` (answered the same way, a list of one list), and minisearch's
`exclude_ids` (one id list or null per query: a RAMP task's own passage).

Every request goes through one `Searcher` (its cache and process pool), one batch at a
time: the searcher is not thread-safe, and a BM25 query is CPU work the GIL serialises
anyway. Bounds (`Limits`) are checked before any search; each violation is a 4xx with a
JSON `{"error": ...}` saying what was wrong and the limit, and the server stays up.

Starlette (the ASGI core under FastAPI) and uvicorn, as the field's servers use, without
FastAPI's model layer: the checks here are a few lines, each with its own message, where
pydantic's 422 would list schema paths.
"""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from minisearch.search.searcher import Searcher
from minisearch.settings import Settings, setting


@dataclass(frozen=True)
class Limits(Settings):
    max_body: int = setting(1_000_000, help="Bytes one request may hold.", min=1)
    max_queries: int = setting(256, help="Queries one request may hold.", min=1)
    max_query_chars: int = setting(2_000, help="Characters of one query.", min=1)
    max_topk: int = setting(100, help="Hits one query may ask for.", min=1)


@dataclass
class ServeConfig(Settings):
    """`minisearch serve`'s settings: where it listens is a setting like any other, local by default."""

    index: str = setting(help="The index folder to serve.", arg=True)
    host: str = setting("127.0.0.1", help="Address to listen on (0.0.0.0 opens it to the network).")
    port: int = setting(8000, help="Port to listen on.", min=1)
    workers: int = setting(1, help="Search processes for large batches.", min=1)
    limits: Limits = setting(Limits())


class BadRequest(Exception):
    """A request the API refuses: the status and what to tell the client."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, limits: Limits) -> tuple[list[str], int, bool, list | None]:
    """(queries, topk, return_scores, exclude_ids) of a /retrieve body, or BadRequest."""
    try:
        req = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise BadRequest(400, f"the body is not JSON ({e})") from e
    except RecursionError as e:  # the parser's own limit (about 1,000 levels), not a server fault
        raise BadRequest(400, 'the body nests too deep: send one flat object like {"queries": ["..."]}') from e
    if not isinstance(req, dict):
        raise BadRequest(400, 'the body must be a JSON object like {"queries": ["..."], "topk": 3}')
    if "queries" in req:
        queries = req["queries"]
        if not isinstance(queries, list):
            raise BadRequest(400, '"queries" must be a list of strings')
    elif "query" in req:
        queries = [req["query"]]
    else:
        raise BadRequest(400, 'no "queries" (a list of strings) or "query" (a string) in the request')
    if len(queries) > limits.max_queries:
        raise BadRequest(413, f"{len(queries)} queries in one request; at most {limits.max_queries}: split them")
    for i, q in enumerate(queries):
        if not isinstance(q, str):
            raise BadRequest(400, f"query {i} is a {type(q).__name__}, not a string")
        if len(q) > limits.max_query_chars:
            raise BadRequest(413, f"query {i} has {len(q)} characters; at most {limits.max_query_chars}")
    topk = req.get("topk", req.get("top_k", 3))
    if isinstance(topk, bool) or not isinstance(topk, int) or not 1 <= topk <= limits.max_topk:
        raise BadRequest(400, f"topk must be a whole number from 1 to {limits.max_topk}, got {topk!r}")
    scores = req.get("return_scores", False)
    if not isinstance(scores, bool):
        raise BadRequest(400, f"return_scores must be true or false, got {scores!r}")
    exclude = req.get("exclude_ids")
    if exclude is not None:
        if not isinstance(exclude, list) or len(exclude) != len(queries) or not all(
                x is None or (isinstance(x, list) and all(isinstance(i, str) for i in x)) for x in exclude):
            raise BadRequest(400, "exclude_ids must be a list with one entry per query: a list of ids or null")
    return queries, topk, scores, exclude


def answer(hits: list[list], scores: bool) -> dict:
    """The /retrieve response for hit lists, in the Search-R1 shape."""
    def doc(h):
        return {"id": h.id, "contents": h.contents}

    return {"result": [[{"document": doc(h), "score": h.score} if scores else doc(h) for h in row]
                       for row in hits]}


def make_app(searcher: Searcher, meta: dict, limits: Limits = Limits()):
    """The ASGI app over an open searcher (which the caller closes)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    lock = threading.Lock()
    health_body = {"status": "ok", "passages": len(searcher), "backend": meta.get("backend"),
                   "source": meta.get("source", ""), "limits": asdict(limits)}

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def read_body(request) -> bytes:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limits.max_body):
            raise BadRequest(413, f"the body is {declared} bytes; at most {limits.max_body}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limits.max_body:
                raise BadRequest(413, f"the body is over {limits.max_body} bytes")
        return bytes(body)

    def search(queries, topk, exclude):
        with lock:
            return searcher.search(queries, k=topk, exclude_ids=exclude)

    async def retrieve(request):
        try:
            queries, topk, scores, exclude = parse_request(await read_body(request), limits)
        except BadRequest as e:
            return error(e.status, str(e))
        try:
            hits = await run_in_threadpool(search, queries, topk, exclude)
        except Exception as e:  # the index failed: say so, stay up
            return error(500, f"search failed ({type(e).__name__}: {e})")
        return JSONResponse(answer(hits, scores))

    async def health(request):
        return JSONResponse(health_body)

    async def not_found(request, exc):
        return error(exc.status_code, f"{request.method} {request.url.path}: no such endpoint; "
                                      "POST /retrieve or GET /health")

    return Starlette(routes=[Route("/retrieve", retrieve, methods=["POST"]), Route("/health", health)],
                     exception_handlers={404: not_found, 405: not_found})


def serve(cfg: ServeConfig, echo=print) -> None:
    """Serve the index folder until interrupted."""
    import uvicorn

    from minisearch.search import open_searcher, read_meta

    meta = read_meta(cfg.index)
    with open_searcher(cfg.index, workers=cfg.workers) as searcher:
        echo(f"serving {cfg.index} ({len(searcher)} passages, {meta['backend']}) at "
             f"http://{cfg.host}:{cfg.port}/retrieve")
        uvicorn.run(make_app(searcher, meta, cfg.limits), host=cfg.host, port=cfg.port, log_level="warning")


@contextmanager
def background(app, host: str = "127.0.0.1"):
    """Serve `app` from a thread on a free port; yield its /retrieve URL (tests, bench/serve.py)."""
    import socket

    import uvicorn

    sock = socket.socket()
    sock.bind((host, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=1_000))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the search server did not start")
            time.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}/retrieve"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
