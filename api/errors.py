"""Every error as JSON a person can read: ``{"error": {"message", "type", "code"}}``.

The shape is OpenAI's, so the OpenAI-compatible endpoint and the rest of the API fail alike and
the official ``openai`` client shows the message.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from rag.knowledge_base import WriteLockTimeout
from rag.llms.base import LLMError

log = logging.getLogger("rag.api")

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}


def error_body(status: int, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "error"), "code": status}}


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def validation_message(error: RequestValidationError) -> str:
    """One sentence per problem: where it is (``body.top_k``) and what is wrong."""
    parts = []
    for item in error.errors():
        location = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        if item.get("type") == "json_invalid":
            parts.append(f"malformed JSON: {item.get('ctx', {}).get('error', item.get('msg'))}")
        else:
            parts.append(f"{location}: {item.get('msg')}")
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    # Starlette's HTTPException, the base of FastAPI's: an unknown path (404) or method (405) answers alike.
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return error_response(422, validation_message(error))

    @app.exception_handler(LLMError)
    async def llm_failed(request: Request, error: LLMError) -> JSONResponse:
        return error_response(502, f"the language model failed: {error}")

    @app.exception_handler(WriteLockTimeout)
    async def busy(request: Request, error: WriteLockTimeout) -> JSONResponse:
        return error_response(503, str(error), {"Retry-After": "60"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal error; the server log has the details")
