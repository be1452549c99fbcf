"""``mcsan serve INDEX_DIR``: search an index over HTTP, with a web page that shows why each
video matched.

    GET  /                      the search page (static; it holds no data)
    POST /search                {"query", "k", "weights"} -> ranked hits, as `mcsan search --json`
    GET  /videos/{id}           a video's metadata and top predicted attributes per level
    GET  /videos/{id}/media     the video file the index registered, with HTTP range requests
    GET  /info                  the index size, the model's levels and fusion weights
    GET  /health                liveness and the index size (never needs the token)
    GET  /metrics               Prometheus text: request counts and latency histograms
    GET  /docs, /openapi.json   the API's documentation

Design. The model and the index are loaded once, when the app is made; every request
shares them. ``POST /search`` is a plain function, which FastAPI runs in its thread pool, so the
event loop goes on accepting requests (health, metrics, media) while queries are answered.
The thread hands its query to one search thread (:class:`SearchBatcher`), which takes every
query waiting at that moment (up to ``MAX_BATCH``) and answers them with one parse, one
encoding and one FAISS call per set of weights: on two cores 32 queries cost about 5 ms each
together and 14 ms each alone. One search thread also keeps spaCy, which is not documented as
thread-safe, on one thread. The index is read through its manifest, so a service started while
another process adds to the index serves the rows committed before it started, never a
half-written row.

Bad input is a 4xx JSON answer ``{"error": "...", ...}`` that says what to fix: a query that
is empty, too long (``MAX_QUERY_CHARS``) or holds control characters, ``k`` outside
1..``MAX_K``, an unknown level or a negative weight, an unknown video, malformed JSON, a body
over ``MAX_BODY_BYTES``. With a token (``--token-file`` or the environment variable
``MCSAN_TOKEN``) every endpoint but ``/health`` and the page itself needs
``Authorization: Bearer <token>``, compared in constant time. The service binds 127.0.0.1
unless told otherwise; cross-origin requests are refused unless origins are named.
"""

from __future__ import annotations

import hmac
import mimetypes
import os
import queue
import threading
import time
import unicodedata
from concurrent.futures import Future
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel, ConfigDict, Field, field_validator

from mcsan import __version__
from mcsan.index import SearchResult, VideoIndex, open_index
from mcsan.search_output import SCHEMA

MAX_QUERY_CHARS = 500
MAX_K = 100
MAX_BODY_BYTES = 16_384
MAX_BATCH = 32  # queries answered together at most
TOKEN_VARIABLE = "MCSAN_TOKEN"
OPEN_PATHS = ("/", "/health")  # answered without the token


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(description="the sentence to search for",
                       examples=["a dog chases a cat"], max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=MAX_K, description="how many videos to return")
    weights: dict[str, float] | None = Field(
        None, description="level -> weight for this search (levels left out keep the "
        "model's); each >= 0", examples=[{"entity": 2.0, "relationship": 1.0}])

    @field_validator("query")
    @classmethod
    def readable(cls, query: str) -> str:
        if not query.strip():
            raise ValueError("the query is empty; give a sentence to search for")
        bad = sorted({f"U+{ord(c):04X}" for c in query if unicodedata.category(c) == "Cc"})
        if bad:
            raise ValueError(f"the query holds control characters ({', '.join(bad)}); send "
                             "plain text")
        return query


@dataclass
class ServiceSettings:
    token: str | None = None
    cors_origins: list[str] = field(default_factory=list)


def read_token(token_file: Path | None) -> str | None:
    """The bearer token from ``token_file`` (its first line) or from MCSAN_TOKEN; None when
    neither is given. An empty token is refused: it would protect nothing."""
    if token_file is not None:
        if not token_file.is_file():
            raise FileNotFoundError(f"token file {token_file} does not exist")
        token = token_file.read_text(encoding="utf-8").strip().splitlines()
        token = token[0].strip() if token else ""
        where = str(token_file)
    else:
        token = os.environ.get(TOKEN_VARIABLE)
        where = TOKEN_VARIABLE
        if token is None:
            return None
    if len(token) < 8:
        raise ValueError(f"the token in {where} is shorter than 8 characters; use a long "
                         "random one (e.g. `python -c \"import secrets; print(secrets."
                         "token_urlsafe())\"`)")
    return token


def create_app(index: VideoIndex, settings: ServiceSettings | None = None) -> FastAPI:
    """The service over an opened index (see the module docstring)."""
    settings = settings or ServiceSettings()
    app = FastAPI(title="MCSAN video search", version=__version__,
                  description="Search a video collection with a sentence; every hit says why "
                  "it matched, level by level.")
    batcher = SearchBatcher(index)
    page = resources.files("mcsan").joinpath("web/index.html").read_text(encoding="utf-8")
    registry = CollectorRegistry()
    requests = Counter("mcsan_requests", "HTTP requests answered", ["method", "path", "status"],
                       registry=registry)
    latency = Histogram("mcsan_request_seconds", "time to answer a request", ["path"],
                        registry=registry,
                        buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5))

    @app.middleware("http")
    async def guard(request: Request, call_next):  # size limit, token, metrics
        started = time.perf_counter()
        response = _refusal(request, settings)
        if response is None:
            response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        requests.labels(request.method, path, str(response.status_code)).inc()
        latency.labels(path).observe(time.perf_counter() - started)
        return response

    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization",
                                                                          "Content-Type"])

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
            message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
            if item.get("type") == "json_invalid":
                message = "the body is not valid JSON"
            problems.append(f"{where}: {message}" if where else message)
        return JSONResponse(status_code=422, content={"error": "; ".join(problems)})

    @app.exception_handler(HTTPException)
    async def refused(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse(status_code=error.status_code, content={"error": error.detail},
                            headers=getattr(error, "headers", None))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def search_page() -> str:
        return page

    @app.post("/search")
    def search(body: SearchRequest) -> dict[str, Any]:
        """The ``k`` best videos for ``query``, best first (schema ``mcsan.search/1``)."""
        try:
            weights = index.retriever.checked_weights(body.weights)
            result = batcher.search(body.query, min(body.k, index.count), weights)
        except ValueError as error:
            raise HTTPException(status_code=400, detail=str(error)) from None
        return {"schema": SCHEMA, "videos": index.count, "k": body.k,
                "results": [result.to_json()]}

    @app.get("/videos/{video_id}")
    def video(video_id: str) -> dict[str, Any]:
        """A video's metadata (source file, frame timestamps where known) and its most likely
        attributes per level."""
        record = _video_record(index, video_id)
        record["media"] = bool(record.get("source"))
        record.pop("source", None)  # the server's file system is not the client's business
        return record

    @app.get("/videos/{video_id}/media")
    def media(video_id: str) -> FileResponse:
        """The video file registered in the index (range requests supported)."""
        source = _video_record(index, video_id).get("source")
        if not source:
            raise HTTPException(status_code=404, detail=f"the index knows no file for video "
                                f"{video_id!r} (its features were not extracted from a file)")
        path = Path(source)
        if not path.is_file():
            raise HTTPException(status_code=404, detail=f"the file of video {video_id!r} is no "
                                "longer where it was extracted from")
        media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return FileResponse(path, media_type=media_type)

    @app.get("/info")
    def info() -> dict[str, Any]:
        """The index's size and the model's levels with their fusion weights."""
        return {"videos": index.count, "levels": list(index.levels),
                "weights": index.retriever.level_weights, "kind": index.kind}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "videos": index.count, "index": index.manifest["faiss"][
            "description"], "mcsan": __version__}

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


class SearchBatcher:
    """One thread that answers the queries of concurrent requests together (module docstring)."""

    def __init__(self, index: VideoIndex) -> None:
        self.index = index
        self.waiting: queue.Queue[tuple[str, int, dict[str, float], Future]] = queue.Queue()
        threading.Thread(target=self._answer_forever, name="mcsan-search", daemon=True).start()

    def search(self, query: str, k: int, weights: dict[str, float]) -> SearchResult:
        """Block until the search thread has answered ``query`` (its errors are raised here)."""
        answer: Future = Future()
        self.waiting.put((query, k, weights, answer))
        return answer.result()

    def _answer_forever(self) -> None:
        while True:
            batch = [self.waiting.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.waiting.get_nowait())
                except queue.Empty:
                    break
            groups: dict[tuple, list] = {}
            for item in batch:
                groups.setdefault(tuple(sorted(item[2].items())), []).append(item)
            for group in groups.values():
                self._answer(group)

    def _answer(self, group: list[tuple[str, int, dict[str, float], Future]]) -> None:
        """One search for queries with the same weights; alone where one of them fails (a
        query without a known word), so that it fails alone."""
        try:
            results = self.index.search([query for query, *_ in group],
                                        k=max(k for _, k, _, _ in group), weights=group[0][2])
        except Exception as error:  # handed to the request that asked for it
            if len(group) > 1:
                for item in group:
                    self._answer([item])
                return
            group[0][3].set_exception(error)
            return
        for (_, k, _, answer), result in zip(group, results, strict=True):
            result.hits = result.hits[:k]
            answer.set_result(result)


def _refusal(request: Request, settings: ServiceSettings) -> JSONResponse | None:
    """A 413 for a body over the limit, a 401 for a missing or wrong token, else None."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
        return JSONResponse(status_code=413, content={
            "error": f"the body is over {MAX_BODY_BYTES} bytes; send one query at a time"})
    if request.method == "POST" and declared is None:
        return JSONResponse(status_code=411, content={
            "error": "send the body with a Content-Length header"})
    if settings.token is None or request.url.path in OPEN_PATHS:
        return None
    given = request.headers.get("authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.token.encode()):
        return None
    return JSONResponse(status_code=401, headers={"WWW-Authenticate": "Bearer"}, content={
        "error": "this service needs a token: send the header 'Authorization: Bearer <token>'"})


def _video_record(index: VideoIndex, video_id: str) -> dict[str, Any]:
    try:
        return index.video(video_id)
    except KeyError:
        raise HTTPException(status_code=404, detail=f"no video {video_id!r} in the index") from None


def run_server(index_dir: Path, *, host: str = "127.0.0.1", port: int = 8000,
               token: str | None = None, cors_origins: list[str] | None = None,
               device: str = "auto") -> None:
    """Load the index and its model, then serve until interrupted."""
    import uvicorn

    index = open_index(index_dir, device=device)
    app = create_app(index, ServiceSettings(token=token, cors_origins=cors_origins or []))
    where = f"http://{host}:{port}"
    print(f"serving {index.count} videos of {index_dir} at {where} (page {where}/, API docs "
          f"{where}/docs){'; token required' if token else ''}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
