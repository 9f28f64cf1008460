"""Server-sent events: the one place frames are written, for every streaming endpoint (``sse-starlette``).

Usage::

    return event_stream(sse(event="token", data={"text": "Hi"}) for ...)   # rag-kb's named events
    return event_stream(chain((sse(data=chunk) for chunk in chunks), [sse(data="[DONE]")]))  # OpenAI's
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from sse_starlette import EventSourceResponse, ServerSentEvent

# Reverse proxies (nginx, most ingress controllers) buffer responses unless told not to (sse-starlette sends
# X-Accel-Buffering: no); "no-transform" keeps compressing proxies off the stream too.
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform"}
SEPARATOR = "\n"  # what OpenAI and most hand-written SSE readers split on ("\n\n" between events)
# A documented response of a streaming route (OpenAPI): the content type, and what the events are.
EVENT_STREAM = {"text/event-stream": {"schema": {"type": "string", "description": "Server-sent events."}}}


def sse(data: Any, event: str | None = None) -> ServerSentEvent:
    """One event; ``data`` that is not a string is sent as JSON (non-ASCII kept as it is)."""
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return ServerSentEvent(text, event=event, sep=SEPARATOR)


def event_stream(events: Iterable[ServerSentEvent]) -> EventSourceResponse:
    """A ``text/event-stream`` response of ``events`` (a sync iterable runs in the thread pool), never buffered."""
    return EventSourceResponse(events, headers=STREAM_HEADERS, sep=SEPARATOR)
