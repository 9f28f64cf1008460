"""ChatGLM2's own ``api.py`` server (``{"prompt", "history"}`` → ``{"response"}``), for existing deployments."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import httpx

from rag.llms.base import LLM, GenerationOptions, LLMError, Message, fold_system


def chatglm_history(messages: Sequence[Message]) -> tuple[str, list[list[str]]]:
    """Split chat messages into ChatGLM2's ``(prompt, [[question, answer], ...])``.

    ChatGLM2 has no system role: the system text is put in front of the first question.
    """
    turns = [m for m in messages if m["role"] != "system"]
    if not turns or turns[-1]["role"] != "user":
        raise ValueError("the last message must be the user's question")
    turns = fold_system(messages)
    history: list[list[str]] = []
    pending: list[str] = []  # user text not yet answered; consecutive user messages are joined, not dropped
    for message in turns[:-1]:
        if message["role"] == "user":
            pending.append(message["content"])
        else:
            history.append(["\n\n".join(pending), message["content"]])
            pending = []
    prompt = "\n\n".join([*pending, turns[-1]["content"]])
    return prompt, history


def chatglm_prompt(query: str, history: Sequence[Sequence[str]]) -> str:
    """The raw prompt ChatGLM2 builds from a question and its history (``[Round n]\\n\\n问：…\\n\\n答：…``)."""
    prompt = ""
    for i, (old_query, response) in enumerate(history, start=1):
        prompt += f"[Round {i}]\n\n问：{old_query}\n\n答：{response}\n\n"
    prompt += f"[Round {len(history) + 1}]\n\n问：{query}\n\n答："
    return prompt


class ChatGLMApiLLM(LLM):
    """A server running ChatGLM2's ``api.py``; it does not stream, so the reply comes in one piece.

    Usage::

        llm = ChatGLMApiLLM("http://127.0.0.1:8000")
        print(llm.generate([{"role": "user", "content": "你好"}]))
    """

    name = "chatglm-api"

    def __init__(self, url: str, timeout: float = 120, max_length: int = 8192) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) URL, got {url!r}")
        if max_length < 256:
            raise ValueError("max_length must be at least 256 tokens")
        self.max_length = max_length
        self.url = url
        self._client = httpx.Client(timeout=httpx.Timeout(timeout, connect=10))

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        options = options or GenerationOptions()
        prompt, history = chatglm_history(messages)
        body = {
            "prompt": prompt,
            "history": history,
            # ChatGLM2 counts the prompt inside max_length: give it the model's whole context.
            "max_length": self.max_length,
            "top_p": options.top_p,
            "temperature": options.temperature,
        }
        try:
            response = self._client.post(self.url, json=body)
        except httpx.HTTPError as error:
            raise LLMError(f"cannot reach ChatGLM2 api.py at {self.url} ({error})") from error
        if response.status_code >= 400:
            raise LLMError(f"ChatGLM2 api.py at {self.url} answered {response.status_code}: {response.text[:300]}")
        try:
            reply = response.json()
            text = reply["response"]
        except (ValueError, KeyError, TypeError) as error:
            raise LLMError(f"ChatGLM2 api.py at {self.url} sent no 'response': {response.text[:300]}") from error
        status = reply.get("status", 200)
        if status != 200 or not isinstance(text, str):
            raise LLMError(f"ChatGLM2 api.py at {self.url} reported status {status}: {response.text[:300]}")
        yield text
