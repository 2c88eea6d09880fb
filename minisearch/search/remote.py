"""Search over HTTP: a `Searcher` look-alike for any server that speaks the Search-R1
retrieval API (`minisearch serve`, or a dense retriever on another machine).

    searcher = open_searcher("http://127.0.0.1:8000/retrieve")   # wherever an index folder goes
    searcher.search(["Velkaran river length"], k=3)

Batches are split to the server's `max_queries` (read from its /health when it is a
minisearch server). A refused connection, a timeout or a 5xx is retried a few times with
backoff; after that, or on a 4xx, a `UserError` names the URL and what to do.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from minisearch.errors import UserError
from minisearch.records import split_contents
from minisearch.search.hit import Hit
from minisearch.search.searcher import clean_query

DEFAULT_MAX_QUERIES = 64      # batch size for servers that do not say theirs
DEFAULT_MAX_QUERY_CHARS = 2_000


def is_url(index) -> bool:
    return isinstance(index, str) and index.startswith(("http://", "https://"))


def endpoints(url: str) -> tuple[str, str]:
    """(retrieve URL, health URL) of a server given by either."""
    base = url.rstrip("/")
    for tail in ("/retrieve", "/health"):
        if base.endswith(tail):
            base = base[: -len(tail)]
    return base + "/retrieve", base + "/health"


class RemoteSearcher:
    """`search(queries, k, exclude_ids) -> hits` against a retrieval server."""

    def __init__(self, url: str, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5):
        import httpx

        self.url, self.health_url = endpoints(url)
        self.retries, self.backoff = retries, backoff
        self.client = httpx.Client(timeout=timeout)
        self._httpx = httpx
        self._info: dict | None = None

    def info(self) -> dict:
        """The server's /health (passages, backend, limits); {} for a server without one."""
        if self._info is None:
            response = self._send("GET", self.health_url, None, missing_ok=True)
            self._info = response.json() if response is not None else {}
        return self._info

    def __len__(self) -> int:
        return int(self.info().get("passages", 0))

    def search(self, queries: Sequence[str], k: int = 3,
               exclude_ids: Sequence[Iterable[str] | None] | None = None) -> list[list[Hit]]:
        if isinstance(queries, str):
            raise TypeError("search() takes a list of queries; wrap a single query in a list")
        if exclude_ids is not None and len(exclude_ids) != len(queries):
            raise ValueError(f"exclude_ids has {len(exclude_ids)} entries for {len(queries)} queries")
        limits = self.info().get("limits", {})
        size = int(limits.get("max_queries", DEFAULT_MAX_QUERIES))
        chars = int(limits.get("max_query_chars", DEFAULT_MAX_QUERY_CHARS))
        queries = [clean_query(q)[:chars] for q in queries]
        excluded = None if exclude_ids is None else [
            [x] if isinstance(x, str) else sorted(x or ()) for x in exclude_ids]
        out: list[list[Hit]] = []
        for i in range(0, len(queries), size):
            body = {"queries": queries[i:i + size], "topk": k, "return_scores": True}
            if excluded is not None:
                body["exclude_ids"] = excluded[i:i + size]
            result = self._send("POST", self.url, body).json()["result"]
            out.extend([_hit(item) for item in row] for row in result)
        return out

    def _send(self, method: str, url: str, body: dict | None, missing_ok: bool = False):
        """The response, retrying what may pass (no connection, timeout, 5xx)."""
        httpx = self._httpx
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                response = self.client.request(method, url, json=body)
            except httpx.TransportError as e:  # refused, reset, timed out
                problem = f"{type(e).__name__}: {e}"
                continue
            if response.status_code >= 500:
                problem = f"HTTP {response.status_code}: {response.text[:200]}"
                continue
            if missing_ok and response.status_code == 404:
                return None
            if response.status_code >= 400:
                raise UserError(f"the search server at {url} refused the request (HTTP {response.status_code}: "
                                f"{_message(response)})")
            return response
        raise UserError(f"the search server at {url} is not answering after {self.retries + 1} tries "
                        f"({problem}); start it with `minisearch serve INDEX --port PORT`, or give an index folder")

    def close(self) -> None:
        self.client.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _hit(item: dict) -> Hit:
    doc, score = (item["document"], item.get("score", 0.0)) if "document" in item else (item, 0.0)
    title, text = split_contents(doc.get("contents", ""))
    return Hit(str(doc.get("id", "")), title, text, float(score))


def _message(response) -> str:
    try:
        return str(response.json().get("error", response.text[:200]))
    except ValueError:
        return response.text[:200]


def remote_meta(url: str) -> dict:
    """meta.json's fields for a server: its backend and size from /health."""
    with RemoteSearcher(url, retries=1) as searcher:
        info = searcher.info()
    return {"backend": info.get("backend") or "remote", "passages": info.get("passages"),
            "source": info.get("source") or url, "url": url}
