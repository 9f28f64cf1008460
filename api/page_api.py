"""The routes the web page adds to the service: conversations and browsing (chunks, document text, paging).

Registered by :func:`install` with one line in :mod:`api.app`; every route takes the caller's key.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI

from api import browse_routes, conversation_routes
from api.deps import caller
from stores.conversations import Conversations


def install(app: FastAPI) -> None:
    """Add the page's routes to ``app`` (built by :func:`api.app.create_app`, so ``app.state.engine`` is set)."""
    app.state.conversations = Conversations(app.state.engine.settings.data_dir / "conversations.sqlite")
    for router in (browse_routes.router, conversation_routes.router):
        app.include_router(router, dependencies=[Depends(caller)])
