"""The one registry of LLM backends: what each is called, how it is built, whether it is remote, what it needs.

Settings validation, the engine, the health check and the README's table all read this registry, so a backend
is added in one place: a :class:`Backend` passed to :func:`register` (as simonw/llm's ``register_models`` hook
does for its plugins). Factories import their implementation late, so naming a backend loads nothing.

Usage::

    from rag.llms.registry import backend, register, Backend
    llm = backend(settings.llm_backend).build(settings)        # None for ``extractive``
    register(Backend("my-server", "My own server", build=my_factory, remote=True, requires=("llm_url",)))
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rag.llms.base import LLM
    from rag.settings import Settings


@dataclass(frozen=True, slots=True)
class Backend:
    """One way of writing answers.

    ``build`` makes the :class:`~rag.llms.base.LLM` from the settings (``None``: no model, ``extractive``);
    ``remote`` backends talk to a server the health check pings at ``llm_url`` + ``health_path``; ``requires``
    names the settings fields that must be set; ``check`` validates the settings further (raises ValueError).
    """

    name: str
    summary: str
    build: Callable[[Settings], LLM] | None = None
    remote: bool = False
    requires: tuple[str, ...] = ()
    health_path: str = ""
    check: Callable[[Settings], None] | None = None

    def validate(self, settings: Settings) -> None:
        for field in self.requires:
            if getattr(settings, field) in (None, ""):
                raise ValueError(f"llm_backend={self.name} needs RAG_{field.upper()}")
        if self.check is not None:
            self.check(settings)


_BACKENDS: dict[str, Backend] = {}


def register(spec: Backend) -> Backend:
    """Add a backend; a second one of the same name is an error, not a silent replacement."""
    if spec.name in _BACKENDS:
        raise ValueError(f"an LLM backend named {spec.name!r} is already registered")
    _BACKENDS[spec.name] = spec
    return spec


def backend(name: str) -> Backend:
    try:
        return _BACKENDS[name]
    except KeyError:
        raise ValueError(f"{name!r} is not an LLM backend; one of: {', '.join(_BACKENDS)}") from None


def backends() -> list[Backend]:
    return list(_BACKENDS.values())


# The built-in backends. Each factory imports its module only when called.


def _embedded(s: Settings) -> LLM:
    from rag.llms.embedded import EmbeddedLLM

    return EmbeddedLLM(s.llm_model, cache_dir=s.llm_cache_dir, n_ctx=s.llm_context, n_threads=s.llm_threads)


def _check_embedded(s: Settings) -> None:
    from rag.llms.bundled_models import bundled

    if s.llm_model is not None:
        bundled(s.llm_model)  # raises ValueError naming the bundled models


def _llama_cpp(s: Settings) -> LLM:
    from rag.llms.llama_cpp_chat import LlamaCppLLM

    assert s.llm_model
    return LlamaCppLLM(s.llm_model, n_ctx=s.llm_context, n_threads=s.llm_threads)


def _check_gguf(s: Settings) -> None:
    if s.llm_model and not s.llm_model.endswith(".gguf"):
        raise ValueError(f"llm_backend=llama-cpp needs RAG_LLM_MODEL to be a .gguf file, got {s.llm_model!r}")


def _openai(s: Settings) -> LLM:
    from rag.llms.openai_compatible import OpenAICompatibleLLM

    assert s.llm_url
    return OpenAICompatibleLLM(s.llm_url, s.llm_model, s.llm_api_key, s.llm_timeout, fold_system=s.llm_fold_system)


def _chatglm_api(s: Settings) -> LLM:
    from rag.llms.chatglm_api import ChatGLMApiLLM

    assert s.llm_url
    return ChatGLMApiLLM(s.llm_url, s.llm_timeout)


def _transformers(s: Settings) -> LLM:
    from rag.llms.transformers_chat import TransformersChatLLM

    assert s.llm_model
    return TransformersChatLLM(s.llm_model, device=s.llm_device, dtype=s.llm_dtype)


def _chatglm_remote_code(s: Settings) -> LLM:
    from rag.llms.chatglm_stream_chat import DEFAULT_CHATGLM2, ChatGLMStreamChatLLM

    return ChatGLMStreamChatLLM(s.llm_model or DEFAULT_CHATGLM2, device=s.llm_device, dtype=s.llm_dtype)


register(Backend("extractive", "no model: quotes the source sentence that best covers the question"))
register(
    Backend(
        "embedded",
        "the bundled Qwen2.5-Coder GGUF through llama.cpp on the CPU (offline)",
        _embedded,
        check=_check_embedded,
    )
)
register(
    Backend(
        "llama-cpp",
        "any chat GGUF file (RAG_LLM_MODEL=/path/model.gguf) through llama.cpp, in process",
        _llama_cpp,
        requires=("llm_model",),
        check=_check_gguf,
    )
)
register(
    Backend(
        "openai",
        "an OpenAI-compatible server (vLLM, FastChat, chatglm.cpp, Ollama, llama.cpp): how ChatGLM2 is served",
        _openai,
        remote=True,
        requires=("llm_url",),
        health_path="/models",
    )
)
register(
    Backend(
        "chatglm-api",
        "ChatGLM2's own api.py server",
        _chatglm_api,
        remote=True,
        requires=("llm_url",),
    )
)
register(
    Backend(
        "transformers",
        "any local chat model with a chat template through transformers",
        _transformers,
        requires=("llm_model",),
    )
)
register(
    Backend(
        "chatglm-remote-code",
        "ChatGLM2-6B in process through its own remote code (needs transformers 4.27-4.40)",
        _chatglm_remote_code,
    )
)
