"""Every error as JSON a person can read, in one of two dialects chosen by the route.

rag-kb's own routes answer ``{"error": {"message", "type", "code": STATUS}}`` (422 for bad input).
The OpenAI-compatible routes (``/v1/...``) speak OpenAI's dialect, so the official clients'
handlers catch them: bad input is a 400, and the object is ``{"error": {"message", "type", "param",
"code"}}`` with ``code`` a string (``model_not_found``, ``invalid_value``, ...) or null.

The status comes from the exception's type, never from its message: ``UnknownKnowledgeBase`` is a
404, any other ``KnowledgeBaseError`` a 422, ``LLMError`` a 502, ``WriteLockTimeout`` a 503.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from rag.knowledge_base import KnowledgeBaseError, UnknownKnowledgeBase, WriteLockTimeout
from rag.llms.base import LLMError

log = logging.getLogger("rag.api")

OPENAI_PREFIX = "/v1/"
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "request_too_large",
    415: "unsupported_media_type",
    422: "invalid_request_error",
    500: "server_error",
    502: "upstream_error",
    503: "service_unavailable",
}
# OpenAI's own codes for the errors its clients branch on; others are null there too.
OPENAI_CODES = {400: "invalid_value", 401: "invalid_api_key", 404: "not_found"}


class ErrorDetail(BaseModel):
    message: str
    type: str
    code: int


class ErrorBody(BaseModel):
    """rag-kb's error body."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error body, on the ``/v1`` routes."""

    error: OpenAIErrorDetail


class OpenAIError(HTTPException):
    """An error of the OpenAI-compatible routes, naming the request ``param`` at fault and OpenAI's ``code``."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None) -> None:
        super().__init__(status, message)
        self.param = param
        self.code = code


def error_body(status: int, message: str) -> dict[str, dict[str, object]]:
    return {"error": {"message": message, "type": ERROR_TYPES.get(status, "error"), "code": status}}


def openai_error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "server_error" if status >= 500 else ERROR_TYPES.get(status, "invalid_request_error"),
            "param": param,
            "code": code or OPENAI_CODES.get(status),
        }
    }


def error_response(
    request: Request,
    status: int,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
    code: str | None = None,
) -> JSONResponse:
    """The error in the dialect of the route asked: OpenAI's (422 read as 400) under ``/v1/``, else rag-kb's."""
    if request.url.path.startswith(OPENAI_PREFIX):
        status = 400 if status == 422 else status
        return JSONResponse(openai_error_body(status, message, param, code), status_code=status, headers=headers)
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


def validation_message(error: RequestValidationError) -> str:
    """One sentence per problem: where it is (``body.top_k``) and what is wrong."""
    parts = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            parts.append(f"malformed JSON: {item.get('ctx', {}).get('error', item.get('msg'))}")
        else:
            parts.append(f"{location(item)}: {item.get('msg')}")
    return "; ".join(parts) or "invalid request"


def location(item: Any) -> str:
    return ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"


def install_error_handlers(app: FastAPI) -> None:
    # Starlette's HTTPException, the base of FastAPI's: an unknown path (404) or method (405) answers alike.
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        param, code = (error.param, error.code) if isinstance(error, OpenAIError) else (None, None)
        return error_response(request, error.status_code, str(error.detail), error.headers, param, code)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        first = next(iter(error.errors()), {})
        return error_response(request, 422, validation_message(error), param=location(first) if first else None)

    @app.exception_handler(UnknownKnowledgeBase)
    async def unknown_kb(request: Request, error: UnknownKnowledgeBase) -> JSONResponse:
        return error_response(request, 404, str(error))

    @app.exception_handler(KnowledgeBaseError)
    async def bad_kb_request(request: Request, error: KnowledgeBaseError) -> JSONResponse:
        return error_response(request, 422, str(error))

    @app.exception_handler(LLMError)
    async def llm_failed(request: Request, error: LLMError) -> JSONResponse:
        return error_response(request, 502, f"the language model failed: {error}")

    @app.exception_handler(WriteLockTimeout)
    async def busy(request: Request, error: WriteLockTimeout) -> JSONResponse:
        return error_response(request, 503, str(error), {"Retry-After": "60"})

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal error; the server log has the details")


DESCRIPTIONS = {
    400: "The body cannot be read (not UTF-8 JSON), or (OpenAI routes) an invalid or unsupported parameter",
    401: "No API key, or an invalid one (only when keys are configured)",
    403: "The API key may not use this knowledge base",
    404: "No such knowledge base, document, job or model",
    413: "The upload is over a size or count limit",
    415: "Unsupported content type or file format",
    422: "Invalid request",
    502: "The language model failed",
    503: "Busy: another writer holds the knowledge base (Retry-After)",
}


def documented(*statuses: int, openai: bool = False) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route's error ``statuses``, each with the body it really has."""
    model = OpenAIErrorBody if openai else ErrorBody
    return {status: {"model": model, "description": DESCRIPTIONS[status]} for status in statuses}
