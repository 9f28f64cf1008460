"""The embedder's model exported to ONNX and quantized to int8, once, into a cache on disk.

The export runs locally from the model the user configured (nothing is downloaded): the
sentence-transformers model is loaded with torch, its transformer is traced with
``torch.onnx.export`` (the TorchScript exporter: the dynamo one needs ``onnxscript`` and gains nothing
here), and ``onnxruntime.quantization.quantize_dynamic`` turns the weights of its linear layers to
int8, per output channel. The int8 model is kept only if its vectors stay close to the torch fp32
model's on a probe sample of English and Chinese texts (mean cosine at least :data:`MIN_COSINE`, none
below :data:`MIN_WORST_COSINE`: one-word texts such as "ok" move most, 0.974 on MiniLM, sentences
0.993-0.998); otherwise the fp32 ONNX model is what ``onnx-int8`` runs (and ``meta.json`` says why).

The cache folder is keyed by the model's files and the versions of torch, transformers, onnx and
onnxruntime, so an upgrade of any of them exports again instead of running a stale graph.

Usage::

    folder = export_model("sentence-transformers/all-MiniLM-L6-v2", Path.home() / ".local/share/rag-kb/embedders")
    meta = json.loads((folder / "meta.json").read_text())  # {"int8": true, "int8_min_cosine": 0.993, ...}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from stores.embedder import resolve_model_path

logger = logging.getLogger(__name__)

# Bump when the export or the quantization changes: older caches are then exported again.
RECIPE = 1
MIN_COSINE = 0.99
MIN_WORST_COSINE = 0.97
FP32_FILE = "model.onnx"
INT8_FILE = "model_int8.onnx"
META_FILE = "meta.json"
# What the int8 model is checked on: short and long, English and Chinese, code and log lines.
PROBE_TEXTS = [
    "How many days of annual leave do employees get?",
    "The reservoir pumps are inspected every spring; pump 7 failed at 03:12 and was replaced.",
    "Beyoncé Giselle Knowles-Carter is an American singer, songwriter, record producer and actress.",
    "CVE-2021-44228: Apache Log4j2 JNDI features do not protect against attacker controlled LDAP endpoints.",
    "ERROR dfs.DataNode: IOException in offerService java.net.SocketTimeoutException 10.251.43.115:50010",
    "def embed(texts): return model.encode(texts, normalize_embeddings=True)",
    "员工每年有多少天年假？",
    "《战国无双3》是由光荣和ω-force开发的战国无双系列的正统第三续作。本作以三大故事为主轴。",
    "ok",
    "who wrote Hamlet?",
    "disk full",
    " ".join(["The committee reviewed the budget, the staffing plan and the safety audit in detail."] * 12),
    "Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France.",
    "Restart the service with systemctl restart nginx and check the logs in /var/log/nginx/error.log.",
]


def runtime_versions() -> dict[str, str]:
    return {name: version(name) for name in ("torch", "transformers", "onnx", "onnxruntime")}


def cache_folder(model: str, cache_dir: Path) -> Path:
    """Where ``model``'s export lives under ``cache_dir``: named after the model, keyed by its files and versions."""
    path = Path(resolve_model_path(model))
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    key = {
        "model": model,
        "files": [(str(p.relative_to(path)), p.stat().st_size, p.stat().st_mtime_ns) for p in files],
        "versions": runtime_versions(),
        "recipe": RECIPE,
    }
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in model.strip("/").split("/")[-1])
    return cache_dir / f"{slug}-{digest}"


def export_model(model: str, cache_dir: Path) -> Path:
    """The cache folder of ``model``, exported and checked there first if it is not yet."""
    folder = cache_folder(model, cache_dir)
    if (folder / META_FILE).is_file():
        return folder
    cache_dir.mkdir(parents=True, exist_ok=True)
    # built in a temporary folder and renamed into place: a crash or a second process never leaves half a cache
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".export-") as tmp:
        staging = Path(tmp) / folder.name
        staging.mkdir()
        _export_into(model, staging)
        try:
            os.replace(staging, folder)
        except OSError:
            if not (folder / META_FILE).is_file():  # another process finished first: theirs is as good
                raise
    return folder


def _export_into(model: str, folder: Path) -> None:
    import torch
    from sentence_transformers import SentenceTransformer

    logger.info("exporting the embedder %s to ONNX int8 in %s (once)", model, folder)
    st = SentenceTransformer(resolve_model_path(model), device="cpu")
    names = [type(module).__name__ for module in st]
    mode = getattr(st[1], "pooling_mode", None) if len(names) > 1 else None
    if names[:2] != ["Transformer", "Pooling"] or mode not in {"mean", "cls"} or not set(names[2:]) <= {"Normalize"}:
        raise ValueError(
            f"the embedder {model!r} ({' + '.join(names)}, pooling {mode}) is not a transformer with mean or CLS "
            "pooling; run it with the torch runtime"
        )
    transformer = st[0]
    tokenizer = transformer.tokenizer
    inputs = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class LastHiddenState(torch.nn.Module):
        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.encoder(**dict(zip(inputs, tensors, strict=True))).last_hidden_state

    sample = tokenizer(PROBE_TEXTS[:2], padding=True, return_tensors="pt")
    axes = {name: {0: "batch", 1: "tokens"} for name in [*inputs, "last_hidden_state"]}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            LastHiddenState(transformer.auto_model.eval()),
            tuple(sample[n] for n in inputs),
            str(folder / FP32_FILE),
            input_names=inputs,
            output_names=["last_hidden_state"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    _quantize(folder / FP32_FILE, folder / INT8_FILE)
    tokenizer.save_pretrained(str(folder))
    meta: dict[str, Any] = {
        "model": model,
        "inputs": inputs,
        "pooling": mode,
        "normalize": "Normalize" in names,
        "max_seq_length": int(st.max_seq_length or 512),
        "dimension": int(st.get_embedding_dimension()),
        "versions": runtime_versions(),
        "recipe": RECIPE,
    }
    reference = st.encode(PROBE_TEXTS, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    from stores.embedder_onnx import OnnxSentenceEncoder

    for name in (FP32_FILE, INT8_FILE):
        vectors = OnnxSentenceEncoder(folder, name, meta).encode(PROBE_TEXTS, normalize_embeddings=True)
        cosines = np.sum(vectors * reference, axis=1)
        meta[f"{name.removesuffix('.onnx')}_cosine"] = {
            "mean": round(float(cosines.mean()), 5),
            "min": round(float(cosines.min()), 5),
        }
    int8 = meta["model_int8_cosine"]
    meta["int8"] = int8["mean"] >= MIN_COSINE and int8["min"] >= MIN_WORST_COSINE
    if not meta["int8"]:
        logger.warning(
            "the int8 export of %s is too far from fp32 (cosine mean %.4f, min %.4f): its fp32 ONNX export runs",
            model,
            int8["mean"],
            int8["min"],
        )
    (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


def _quantize(source: Path, target: Path) -> None:
    """Int8 weights, per output channel, for the linear layers (MatMuls with a constant weight).

    The feed-forward down-projection (the MatMul after the activation) stays fp32: its inputs have the
    outliers that per-tensor int8 activations clip, and on MiniLM quantizing it brought the worst
    cosine to fp32 from 0.994 down to 0.986.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    graph = onnx.load(str(source)).graph
    initializers = {i.name for i in graph.initializer}
    producers = {out: node.op_type for node in graph.node for out in node.output}
    after_activation = [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and node.input[1] in initializers
        and producers.get(node.input[0]) in {"Mul", "Gelu", "FastGelu", "BiasGelu", "Relu", "Tanh"}
    ]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # quantize_dynamic advises "pre-processing" on the root logger; it is for CNNs
    try:
        quantize_dynamic(
            str(source),
            str(target),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
            nodes_to_exclude=after_activation,
            extra_options={"MatMulConstBOnly": True},
        )
    finally:
        root.setLevel(level)
