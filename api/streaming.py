"""Server-sent events responses, the same for every streaming endpoint."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi.responses import StreamingResponse

# Reverse proxies (nginx, most ingress controllers) buffer responses unless told not to: the tokens
# would then arrive all at once at the end. "no-transform" keeps compressing proxies off them too.
STREAM_HEADERS = {"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"}


def event_stream(events: Iterator[str]) -> StreamingResponse:
    """A ``text/event-stream`` response of already-formatted SSE ``events``, never buffered on the way."""
    return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)
