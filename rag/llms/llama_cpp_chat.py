"""Any chat GGUF in process through llama.cpp (``llama_cpp.Llama``), with the chat template the GGUF carries.

llama-cpp-python is built (Makefile) with GGML's CPU variants as loadable libraries (``GGML_BACKEND_DL``,
``GGML_CPU_ALL_VARIANTS``): one library per instruction set, the best one this CPU runs picked when the first
model loads. A build with the CPU code linked in (no variants) works too.
"""

from __future__ import annotations

import ctypes
import logging
import os
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from rag.llms.base import LLM, GenerationOptions, LLMError, Message

_backends_lock = threading.Lock()


def library_folder() -> Path:
    """Where llama-cpp-python loads its libraries from: ``llama_cpp/lib``, or ``LLAMA_CPP_LIB_PATH`` (its override)."""
    import llama_cpp

    return Path(os.environ.get("LLAMA_CPP_LIB_PATH") or Path(llama_cpp.__file__).parent / "lib")


def variant_libraries() -> list[Path]:
    """GGML's CPU variant libraries of this build (none when the CPU code is linked in).

    scikit-build-core installs them under the ``bin`` folder of the install prefix, beside ``llama_cpp`` in
    site-packages; the library folder itself is looked in too.
    """
    lib = library_folder()
    return sorted({*lib.glob("*ggml-cpu-*"), *(lib.parent.parent / "bin").glob("*ggml-cpu-*")})


def load_cpu_backends() -> None:
    """Load GGML's best CPU variant when llama-cpp-python was built with ``GGML_BACKEND_DL`` (once a process).

    llama-cpp-python does not do it itself (abetlen/llama-cpp-python#2069): without it such a build loads no
    model ("no backends are loaded").
    """
    import llama_cpp.llama_cpp  # noqa: F401  (loads libllama, and with it the libggml it links)

    # llama-cpp-python's log callback prints GGML's INFO lines ("load_backend: loaded CPU backend from …") until a
    # Llama(verbose=False) sets its logger's level, and the backends load before that: quiet unless asked for.
    llama_log = logging.getLogger("llama-cpp-python")
    if llama_log.level == logging.NOTSET:
        llama_log.setLevel(logging.ERROR)
    with _backends_lock:
        # The libggml libllama loaded, by its soname: the wheel holds libggml.so and libggml.so.0 as two copies,
        # and backends loaded into the other copy's registry would be invisible to llama.cpp.
        ggml = ctypes.CDLL("libggml.so.0")
        ggml.ggml_backend_dev_count.restype = ctypes.c_size_t
        if ggml.ggml_backend_dev_count() > 0:
            return  # CPU code linked in, or variants already loaded
        ggml.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]
        for folder in {lib.parent for lib in variant_libraries()}:
            ggml.ggml_backend_load_all_from_path(str(folder).encode())
        if ggml.ggml_backend_dev_count() == 0:
            raise LLMError(f"llama-cpp-python in {library_folder()} has no CPU backend library for this CPU")


def cpu_variant() -> str | None:
    """The GGML CPU variant this process loaded (``haswell``, ``icelake``, …; None: linked in or not loaded)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    found = re.search(r"libggml-cpu-([\w-]+)\.so", maps)
    return found.group(1) if found else None


class LlamaCppLLM(LLM):
    """A chat GGUF on the CPU: loaded on first use, one generation at a time, streamed token by token.

    ``n_ctx`` is the context window in tokens (prompt and answer together); ``n_threads`` defaults to the
    CPUs this process may use. ``stop`` strings end the answer (the chat template's end-of-turn always does).

    Usage::

        llm = LlamaCppLLM("/models/qwen2.5-1.5b-instruct-q4_k_m.gguf")
        for piece in llm.stream([{"role": "user", "content": "你好"}]):
            print(piece, end="")
    """

    name = "llama-cpp"

    def __init__(
        self, model_path: str | Path, n_ctx: int = 4096, n_threads: int | None = None, stop: Sequence[str] = ()
    ) -> None:
        if not str(model_path).strip():
            raise ValueError("model_path must be a GGUF file")
        if n_ctx < 256:
            raise ValueError(f"n_ctx must be at least 256 tokens, got {n_ctx}")
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be at least 1, got {n_threads}")
        self.model_path = Path(model_path).expanduser()
        self.n_ctx = n_ctx
        self.n_threads = n_threads or len(os.sched_getaffinity(0))
        self.stop = list(stop)
        self._llama = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()  # one llama.cpp context: one generation at a time

    def model_file(self) -> Path:
        """The GGUF file to load (subclasses find or assemble it)."""
        return self.model_path

    def _load(self):  # -> llama_cpp.Llama
        with self._load_lock:
            if self._llama is None:
                path = self.model_file()
                if not path.is_file():
                    raise LLMError(f"cannot load the model: {path} does not exist")
                try:
                    from llama_cpp import Llama
                except ImportError as error:
                    raise LLMError("the llama-cpp backends need llama-cpp-python (make install builds it)") from error
                load_cpu_backends()
                try:
                    self._llama = Llama(
                        model_path=str(path), n_ctx=self.n_ctx, n_threads=self.n_threads, verbose=False
                    )
                except ValueError as error:  # not a GGUF, an unknown architecture, too little memory
                    raise LLMError(f"llama.cpp cannot load {path}: {error}") from error
            return self._llama

    @property
    def loaded(self) -> bool:
        return self._llama is not None

    def count_tokens(self, text: str) -> int:
        """Tokens in ``text`` by the model's own tokenizer (what ``usage`` reports for this backend)."""
        return len(self._load().tokenize(text.encode("utf-8"), add_bos=False, special=False))

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None) -> Iterator[str]:
        options = options or GenerationOptions()
        llama = self._load()
        with self._generate_lock:
            try:
                chunks = llama.create_chat_completion(
                    messages=list(messages),
                    stream=True,
                    max_tokens=options.max_tokens,
                    temperature=options.temperature,
                    top_p=options.top_p,
                    repeat_penalty=1.1,  # small models otherwise loop on copied text
                    stop=self.stop or None,
                )
                for chunk in chunks:
                    delta = chunk["choices"][0]["delta"].get("content")
                    if delta:
                        yield delta
            except ValueError as error:  # "Requested tokens (…) exceed context window of …"
                raise LLMError(f"llama.cpp could not answer: {error}") from error
