"""ChatGLM2-6B in-process through its own remote code: ``model.stream_chat(tokenizer, query, history, ...)``.

For deployments that keep ChatGLM2's ``modeling_chatglm.py`` / ``tokenization_chatglm.py`` (loaded with
``trust_remote_code=True``). That code was written for **transformers 4.27–4.40** (it breaks on later releases)
and needs **sentencepiece**. rag-kb itself pins transformers 5 (and sentence-transformers 6, which needs it), so
this backend runs only in an environment the user assembles: ``transformers>=4.34,<=4.40``, ``sentencepiece``,
``sentence-transformers>=3.0,<3.1``, rag-kb installed with ``--no-deps`` (not tested here; the backend's contract
is tested with a stand-in model object). Everywhere else, serve ChatGLM2 over HTTP (vLLM, FastChat, chatglm.cpp)
and use the ``openai`` backend, or ChatGLM2's ``api.py`` with ``chatglm-api``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from rag.llms.base import LLM, GenerationOptions, LLMError, Message
from rag.llms.chatglm_api import chatglm_history
from rag.llms.transformers_chat import DTYPES, TorchDtype

DEFAULT_CHATGLM2 = "THUDM/chatglm2-6b"
REMOTE_CODE_VERSIONS = "transformers>=4.27,<=4.40 and sentencepiece"
# ChatGLM2's process_response() rewrites this marker to "2023年" in the cumulative reply; while a reply ends
# with the start of it, that tail may still change, so it is held back.
TRAINING_TIME_MARKER = "[[训练时间]]"


class StreamChatModel(Protocol):
    """What ChatGLM2's remote code provides: ``stream_chat`` yielding ``(response_so_far, history)``."""

    def stream_chat(
        self, tokenizer: Any, query: str, history: list[tuple[str, str]] | None = None, **kwargs: Any
    ) -> Iterator[tuple[str, list[tuple[str, str]]]]: ...


class ChatGLMStreamChatLLM(LLM):
    """ChatGLM2-6B loaded with ``AutoModel.from_pretrained(..., trust_remote_code=True)``, streamed
    through its ``stream_chat``. Needs, in the user's own environment, ``transformers>=4.27,<=4.40`` and
    ``sentencepiece`` (ChatGLM2's remote code does not load on later transformers).

    ``stream_chat`` yields the whole reply so far each time; this backend yields only what is new. The system
    message is put in front of the first question (ChatGLM2 has no system role). ``max_length`` is the model's
    context, prompt included (8192 for chatglm2-6b); the reply itself is capped by ``max_tokens``. Pass
    ``chat_model`` and ``tokenizer`` to use objects already loaded (then ``model`` only names them).

    Usage::

        llm = ChatGLMStreamChatLLM("THUDM/chatglm2-6b", device="cuda", dtype="float16")
        for piece in llm.stream([{"role": "user", "content": "你好"}]):
            print(piece, end="")
    """

    name = "chatglm-remote-code"

    def __init__(
        self,
        model: str = DEFAULT_CHATGLM2,
        device: str = "cpu",
        dtype: TorchDtype = "auto",
        max_length: int = 8192,
        *,
        chat_model: StreamChatModel | None = None,
        tokenizer: Any = None,
    ) -> None:
        if not model or not model.strip():
            raise ValueError("model must be a model name or a local model folder")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if max_length < 256:
            raise ValueError("max_length must be at least 256 tokens")
        if (chat_model is None) != (tokenizer is None):
            raise ValueError("pass chat_model and tokenizer together, or neither (then both are loaded from model)")
        if chat_model is not None and not callable(getattr(chat_model, "stream_chat", None)):
            raise ValueError(f"chat_model must have ChatGLM2's stream_chat method; {type(chat_model).__name__} has not")
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.max_length = max_length
        self._loaded: tuple[StreamChatModel, Any] | None = (chat_model, tokenizer) if chat_model is not None else None
        self._lock = threading.Lock()

    def _load(self) -> tuple[StreamChatModel, Any]:
        with self._lock:
            if self._loaded is None:
                import transformers
                from transformers import AutoModel, AutoTokenizer

                # ChatGLM2 ships float16 weights; half precision on the CPU is slow or unsupported, so "auto" there
                # means float32 (as ChatGLM2's own README does with .float()).
                dtype = "float32" if self.dtype == "auto" and self.device == "cpu" else self.dtype
                local = Path(self.model_name).expanduser()
                if self.model_name.startswith(("/", ".", "~")) and not local.is_dir():
                    raise LLMError(f"cannot load ChatGLM2: the folder {local} does not exist")
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_name, trust_remote_code=True)
                    # torch_dtype, not dtype: the transformers versions this code runs on know only that name.
                    model = AutoModel.from_pretrained(self.model_name, trust_remote_code=True, torch_dtype=dtype)
                    model = model.to(self.device).eval()
                except Exception as error:  # remote code fails in many ways on a transformers it was not written for
                    raise LLMError(
                        f"cannot load {self.model_name!r} with its remote code: {str(error).rstrip('.')}. "
                        "ChatGLM2's remote code "
                        f"needs {REMOTE_CODE_VERSIONS} (this environment has transformers {transformers.__version__})"
                        "; or serve the model over HTTP and use RAG_LLM_BACKEND=openai"
                    ) from error
                self._loaded = (model, tokenizer)
            return self._loaded

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        options = options or GenerationOptions()
        query, history = chatglm_history(messages)
        model, tokenizer = self._load()
        # stream_chat samples by default; greedy needs do_sample=False, and ChatGLM2 still applies its warpers,
        # so temperature and top_p are set to values that leave the distribution unchanged.
        sampling = (
            {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
            if options.temperature > 0
            else {"do_sample": False, "temperature": 1.0, "top_p": 1.0}
        )
        replies = model.stream_chat(
            tokenizer,
            query,
            [(q, a) for q, a in history],
            max_length=self.max_length,
            max_new_tokens=options.max_tokens,
            **sampling,
        )
        sent = ""  # what has been yielded
        text = ""
        try:
            for reply in replies:
                if not isinstance(reply, tuple) or not reply or not isinstance(reply[0], str):
                    raise LLMError(f"stream_chat yielded {type(reply).__name__}, not (response, history)")
                text = reply[0]
                stable = _without_open_marker(text)
                # Normally the reply only grows; if the remote code rewrote text already sent, only what lies
                # beyond it is new.
                if len(stable) > len(sent):
                    yield stable[len(sent) :]
                    sent = stable
        except LLMError:
            raise
        except Exception as error:  # e.g. CUDA out of memory, or remote code at odds with this transformers
            raise LLMError(f"ChatGLM2 stream_chat failed: {error!r}") from error
        finally:
            close = getattr(replies, "close", None)
            if close is not None:
                close()  # stops generation when the reader went away early
        if len(text) > len(sent):
            yield text[len(sent) :]


def _without_open_marker(text: str) -> str:
    """``text`` less a tail that could still become :data:`TRAINING_TIME_MARKER`."""
    for size in range(min(len(TRAINING_TIME_MARKER) - 1, len(text)), 0, -1):
        if TRAINING_TIME_MARKER.startswith(text[-size:]):
            return text[:-size]
    return text
