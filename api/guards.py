"""Protection a local daemon needs before any route runs: Host, cross-site writes, body size.

- **Host**: a service bound to loopback answers only requests whose ``Host`` names loopback (or a
  host in ``allowed_hosts``). A page on ``evil.example`` that re-points its DNS name at 127.0.0.1
  (DNS rebinding) still sends ``Host: evil.example`` and is refused (421).
- **Cross-site writes**: a browser sends ``Origin`` (and ``Sec-Fetch-Site``) with every cross-origin
  request, including the ``no-cors`` form posts any web page may make without asking. A write
  (POST, PUT, PATCH, DELETE) whose ``Sec-Fetch-Site`` is ``cross-site``/``same-site`` or whose
  ``Origin`` is not this service's own host is refused (403). Clients that are not browsers (curl,
  the SDKs) send neither header and are not affected.
- **Body size**: a request body over ``max_request_mb`` (``max_upload_mb`` for the upload routes,
  which stream and check their own limit) is refused (413) before the route sees it; a body
  without ``Content-Length`` is counted as it arrives.

Usage::

    app.add_middleware(RequestGuard, settings=settings)
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import error_response
from rag.settings import Settings

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The routes that take uploads: they read their body as a stream under max_upload_mb themselves.
UPLOAD_ROUTE = re.compile(r"^/kbs/[^/]+/documents(?:/[^/]+)?/?$")


def host_name(value: str) -> str:
    """The host of a ``Host`` header or URL netloc, lower case, without port or IPv6 brackets."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class RequestGuard:
    """ASGI middleware applying the checks of this module to every HTTP request."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.check_host = is_loopback(host_name(settings.host)) or bool(settings.allowed_hosts)
        self.allowed = {host_name(h) for h in settings.allowed_hosts} | set(LOOPBACK_NAMES) | {host_name(settings.host)}
        self.any_host = "*" in settings.allowed_hosts
        self.max_request = int(settings.max_request_mb * 2**20)
        self.max_upload = int(settings.max_upload_mb * 2**20)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        problem = self.refusal(scope, headers)
        if problem is not None:
            status, message = problem
            await error_response(Request(scope), status, message)(scope, receive, send)
            return
        upload = UPLOAD_ROUTE.match(scope["path"]) is not None and scope["method"] in {"POST", "PUT"}
        limit = self.max_upload if upload else self.max_request
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            await self.too_large(scope, limit, upload)(scope, receive, send)
            return
        if upload or declared.isdigit():
            await self.app(scope, receive, send)  # the declared length is what the server reads
            return
        body = await self.read_body(receive, limit)
        if body is None:
            await self.too_large(scope, limit, upload)(scope, receive, send)
            return
        await self.app(scope, replay(body, receive), send)

    def refusal(self, scope: Scope, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, message) when the request must not reach a route."""
        host = host_name(headers.get("host", ""))
        if self.check_host and not self.any_host and self._peer_is_ip(scope) and host not in self.allowed:
            return 421, (
                f"unknown Host {host!r}: this service answers as {', '.join(sorted(self.allowed))}; "
                "add the name to allowed_hosts to serve it"
            )
        if scope["method"] not in WRITE_METHODS:
            return None
        site = headers.get("sec-fetch-site", "").lower()
        origin = headers.get("origin")
        cross_origin = origin is not None and (origin == "null" or host_name(urlsplit(origin).netloc) != host)
        if site in {"cross-site", "same-site"} or cross_origin:
            return 403, "cross-site request refused: changes are accepted only from this service's own page"
        return None

    @staticmethod
    def _peer_is_ip(scope: Scope) -> bool:
        """Whether the request came over a network socket (in-process test clients name no IP peer)."""
        client = scope.get("client")
        if not client:
            return False
        try:
            ipaddress.ip_address(client[0])
        except ValueError:
            return False
        return True

    @staticmethod
    async def read_body(receive: Receive, limit: int) -> bytes | None:
        """The whole body, or None once it is over ``limit`` bytes."""
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return bytes(body)
            body += message.get("body", b"")
            if len(body) > limit:
                return None
            if not message.get("more_body", False):
                return bytes(body)

    @staticmethod
    def too_large(scope: Scope, limit: int, upload: bool) -> JSONResponse:
        setting = "max_upload_mb" if upload else "max_request_mb"
        message = f"the request body is over the {limit / 2**20:g} MB limit ({setting})"
        return error_response(Request(scope), 413, message)


def replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that gives ``body`` once, then whatever the client sends next (its disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
