"""The HTTP service: knowledge bases, documents, ask and search, OpenAI- and ChatGLM2-compatible
endpoints, and the web page, over one data directory.

Sync endpoints run in FastAPI's thread pool and ingestion in a worker thread, so a long upload
blocks no other request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from api import chatglm_routes, knowledge_routes, openai_routes, page_api
from api.deps import caller
from api.errors import OPENAI_PREFIX, install_error_handlers
from api.guards import RequestGuard
from api.uploads import Stager
from rag.engine import Engine
from rag.llms.registry import backend as llm_backend
from rag.settings import Settings

log = logging.getLogger("rag.api")
STATIC = Path(__file__).parent / "static"
VERSION = "0.1.0"


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    """The FastAPI app over one data directory.

    ``engine``, when given, is used as it is, so a caller can share parts it already built (a loaded
    embedder); ``settings`` must then be left out or be the engine's own.

    Usage::

        uvicorn.run(create_app(Settings()), port=8000)
    """
    if engine is None:
        engine = Engine(settings or Settings())
    elif settings is not None and settings is not engine.settings:
        raise ValueError("pass settings or an engine built from them, not two different configurations")
    settings = engine.settings
    api_keys = settings.load_api_keys()  # a broken keys file stops the start, not the first request
    # Built now, in one thread: the request threads then share one set of stores (models still load lazily).
    engine.knowledge_bases, engine.answerer, engine.ingest_jobs  # noqa: B018

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The embedder loads in the background: the service answers /health at once and is ready when it is.
        threading.Thread(target=lambda: engine.embedder.model, name="rag-warmup", daemon=True).start()
        yield
        engine.ingest_jobs.close()

    app = FastAPI(
        title="rag-kb",
        version=VERSION,
        description="Cited answers from your documents, or an honest refusal.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.api_keys = api_keys
    app.state.stager = Stager(settings.data_dir / "uploads", int(settings.max_file_mb * 2**20))
    install_error_handlers(app)
    app.add_middleware(RequestGuard, settings=settings)  # Host, cross-site writes, body size (api/guards.py)
    for router in (knowledge_routes.router, openai_routes.router, chatglm_routes.router):
        app.include_router(router, dependencies=[Depends(caller)])
    page_api.install(app)

    health = Health(engine)

    @app.get("/health", tags=["service"])
    def health_check() -> dict[str, Any]:
        """Liveness (it answers) and readiness: store, embedder and LLM each checked."""
        return health.report()

    @app.get(
        "/health/ready",
        tags=["service"],
        responses={503: {"description": "Not ready yet (the report says which check fails)"}},
    )
    def ready() -> JSONResponse:
        """200 when ready to answer, 503 while not (for load balancers and orchestrators)."""
        report = health.report()
        return JSONResponse(report, status_code=200 if report["ready"] else 503)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.openapi = lambda: openapi_document(app)  # type: ignore[method-assign]
    return app


def openapi_document(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, less the 422 it adds to every route with parameters where the route never answers
    422: the OpenAI-compatible routes answer bad input with OpenAI's 400."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        for path, operations in schema["paths"].items():
            if path.startswith(OPENAI_PREFIX):
                for operation in operations.values():
                    operation["responses"].pop("422", None)
        app.openapi_schema = schema
    return app.openapi_schema


class Health:
    """Readiness of each part; a remote LLM's answer is remembered for a few seconds."""

    LLM_CHECK_SECONDS = 10

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._llm: tuple[float, dict[str, Any]] | None = None

    def report(self) -> dict[str, Any]:
        checks = {"store": self._store(), "embedder": self._embedder(), "llm": self._llm_check()}
        ready = all(c["ok"] for c in checks.values())
        return {"status": "ok", "ready": ready, "version": VERSION, "checks": checks}

    def _store(self) -> dict[str, Any]:
        try:
            self.engine.knowledge_bases.list()
            self.engine.vectors.heartbeat()
        except Exception as error:
            return {"ok": False, "detail": f"store unavailable: {type(error).__name__}"}
        return {"ok": True}  # no KB count: /health answers anyone, and what exists is each key's own business

    def _embedder(self) -> dict[str, Any]:
        embedder = self.engine.embedder
        return {
            "ok": embedder.loaded,
            "model": self.engine.settings.embedder_model,
            "detail": "loaded" if embedder.loaded else "loading",
        }

    def _llm_check(self) -> dict[str, Any]:
        s = self.engine.settings
        spec = llm_backend(s.llm_backend)
        if spec.build is None:
            return {"ok": True, "backend": spec.name, "detail": "no model needed"}
        if not spec.remote:
            return {"ok": True, "backend": spec.name, "detail": "in-process; loads on first use"}
        now = time.monotonic()
        if self._llm is None or now - self._llm[0] > self.LLM_CHECK_SECONDS:
            self._llm = (now, self._ping(s.llm_url or "", spec.name, spec.health_path))
        return self._llm[1]

    @staticmethod
    def _ping(url: str, backend: str, path: str = "") -> dict[str, Any]:
        try:
            # Any HTTP answer means the server is up; ChatGLM2's api.py has no GET route and says 405.
            target = url.rstrip("/") + path
            httpx.get(target, timeout=2)
        except httpx.HTTPError as error:
            return {"ok": False, "backend": backend, "detail": f"{url} does not answer: {type(error).__name__}"}
        return {"ok": True, "backend": backend, "detail": f"{url} answers"}
