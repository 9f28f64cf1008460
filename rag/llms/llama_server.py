"""llama-cpp-python's OpenAI-compatible server, with GGML's CPU variant loaded first.

``python -m llama_cpp.server`` loads no CPU backend from a ``GGML_BACKEND_DL`` build (the Makefile's); this starts
the same server after :func:`~rag.llms.llama_cpp_chat.load_cpu_backends`, with the same arguments.

Usage::

    python -m rag.llms.llama_server --model /models/qwen2.5-1.5b-instruct-q4_k_m.gguf --port 8001
"""

from __future__ import annotations

import runpy
import sys

from rag.llms.llama_cpp_chat import load_cpu_backends


def main() -> None:
    load_cpu_backends()
    sys.argv[0] = "llama_cpp.server"
    runpy.run_module("llama_cpp.server", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
