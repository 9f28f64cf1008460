"""An exported embedder run by ONNX Runtime: the HF tokenizer, the ONNX graph, pooling and normalization.

It answers the part of sentence-transformers' interface that :class:`stores.embedder.Embedder` uses
(``tokenizer``, ``max_seq_length``, ``get_embedding_dimension``, ``encode``), so the embedder's passes
of about equal tokens work the same on both runtimes. torch is not imported.

Usage::

    folder = export_model("all-MiniLM-L6-v2", cache_dir)  # stores.embedder_export
    encoder = OnnxSentenceEncoder(folder, "model_int8.onnx")
    vectors = encoder.encode(["hello", "world"], normalize_embeddings=True)  # (2, 384) float32
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class OnnxSentenceEncoder:
    """One exported model (``folder`` holds the graphs, the tokenizer and ``meta.json``) in an ONNX Runtime session."""

    def __init__(self, folder: Path, graph: str, meta: dict[str, Any] | None = None, threads: int = 0) -> None:
        import onnxruntime
        from transformers import AutoTokenizer

        self.folder = folder
        self.meta = meta if meta is not None else json.loads((folder / "meta.json").read_text(encoding="utf-8"))
        if self.meta["pooling"] not in {"mean", "cls"}:
            raise ValueError(f"{folder}: unknown pooling {self.meta['pooling']!r}")
        self.graph = graph
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.max_seq_length = int(self.meta["max_seq_length"])
        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads  # 0: one per physical core, as torch does
        self.session = onnxruntime.InferenceSession(str(folder / graph), options, providers=["CPUExecutionProvider"])

    def get_embedding_dimension(self) -> int:
        return int(self.meta["dimension"])

    def encode(self, texts: Sequence[str], normalize_embeddings: bool = True, **_: Any) -> np.ndarray:
        """Vectors of ``texts`` in one pass, padded to the longest (batching is the caller's)."""
        if not texts:
            return np.zeros((0, self.get_embedding_dimension()), dtype=np.float32)
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_seq_length, return_tensors="np"
        )
        feeds = {name: batch[name].astype(np.int64) for name in self.meta["inputs"]}
        hidden = self.session.run(None, feeds)[0]
        if self.meta["pooling"] == "cls":
            vectors = hidden[:, 0]
        else:
            mask = batch["attention_mask"][..., None].astype(np.float32)
            vectors = (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)
        if normalize_embeddings or self.meta["normalize"]:
            vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
        return vectors.astype(np.float32, copy=False)
