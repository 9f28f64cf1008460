"""The ONNX runtimes: exported once into the cache, vectors close to torch's, clear errors for bad settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import stores.embedder_export as export
from stores import Embedder

# Not the texts the export checks itself on: questions and passages as the QA corpora have them.
SAMPLE = [
    "When did Beyonce start becoming popular?",
    "In what country is Normandy located?",
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy.",
    "Which NFL team represented the AFC at Super Bowl 50?",
    "Super Bowl 50 was an American football game to determine the champion of the National Football League.",
    "kernel: EXT4-fs error (device sda1): ext4_find_entry:1455: inode #2: comm systemd: reading directory lblock 0",
    "What does the travel policy say about economy class flights longer than six hours?",
    "The pumps at the north reservoir were replaced in 2019 after repeated failures of the seals.",
    "新冠病毒的潜伏期一般是多少天？",
    "Chopin composed mostly for solo piano, including nocturnes, études, mazurkas and polonaises.",
]


@pytest.fixture(scope="module")
def onnx_cache() -> Path:
    """The cache the tests share (conftest points RAG_EMBEDDER_CACHE_DIR at one per run)."""
    return Path(os.environ["RAG_EMBEDDER_CACHE_DIR"])


@pytest.fixture(scope="module")
def int8(onnx_cache: Path) -> Embedder:
    return Embedder(runtime="onnx-int8", cache_dir=onnx_cache)


@pytest.mark.slow
def test_int8_vectors_are_within_tolerance_of_torch(embedder: Embedder, int8: Embedder) -> None:
    assert int8.runtime_in_use == "onnx-int8"  # the bundled MiniLM passes the export's own check
    reference, vectors = embedder.embed(SAMPLE), int8.embed(SAMPLE)
    assert vectors.shape == reference.shape and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosines = np.sum(vectors * reference, axis=1)
    assert cosines.mean() >= 0.99 and cosines.min() >= 0.98, cosines
    query = int8.embed_query("When did Beyonce start becoming popular?")
    assert float(query @ reference[0]) >= 0.99
    # int8 activations are scaled per pass: a text's vector barely depends on what it shares the pass with
    alone = np.stack([int8.embed([t])[0] for t in SAMPLE[:4]])
    assert np.sum(alone * vectors[:4], axis=1).min() >= 0.99


@pytest.mark.slow
def test_fp32_onnx_gives_torch_vectors(embedder: Embedder, onnx_cache: Path) -> None:
    fp32 = Embedder(runtime="onnx", cache_dir=onnx_cache)
    np.testing.assert_allclose(fp32.embed(SAMPLE), embedder.embed(SAMPLE), atol=2e-4)
    assert fp32.runtime_in_use == "onnx"


@pytest.mark.slow
def test_the_export_is_made_once_and_again_when_a_version_changes(
    int8: Embedder, onnx_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    int8.embed(["warm"])
    folder = export.cache_folder(int8.model_name, onnx_cache)
    meta = json.loads((folder / export.META_FILE).read_text())
    assert meta["int8"] and meta["versions"] == export.runtime_versions()
    assert meta["model_int8_cosine"]["mean"] >= export.MIN_COSINE

    def no_export(*_: object) -> None:
        raise AssertionError("exported again although the cache holds this model")

    monkeypatch.setattr(export, "_export_into", no_export)
    again = Embedder(runtime="onnx-int8", cache_dir=onnx_cache)
    assert again.embed(["warm"]).shape == (1, 384)
    # another onnxruntime (or torch, transformers, onnx) is another folder: the stale graph is not reused
    monkeypatch.setattr(export, "runtime_versions", lambda: {**meta["versions"], "onnxruntime": "0.0.1"})
    assert export.cache_folder(int8.model_name, onnx_cache) != folder
    with pytest.raises(AssertionError, match="exported again"):
        Embedder(runtime="onnx-int8", cache_dir=onnx_cache).embed(["x"])


def test_runtime_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown embedder runtime 'tensorrt'"):
        Embedder(runtime="tensorrt", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="needs cache_dir"):
        Embedder(runtime="onnx-int8")
    assert Embedder(device="cuda", runtime="onnx-int8", cache_dir=tmp_path).runtime == "torch"


def test_a_model_that_is_not_a_pooled_transformer_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Module:
        pass

    class Unpooled(list):
        max_seq_length = 128

    class FakeSentenceTransformerWithoutPooling:
        """Stands in for a sentence-transformers model without a Pooling module (none is bundled here)."""

        def __new__(cls, *_: object, **__: object) -> Unpooled:
            return Unpooled([Module()])

    monkeypatch.setattr("sentence_transformers.SentenceTransformer", FakeSentenceTransformerWithoutPooling)
    with pytest.raises(ValueError, match="with the torch runtime"):
        export.export_model("all-MiniLM-L6-v2", tmp_path)
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]  # nothing half-made is left


def test_commands_that_need_no_model_do_not_import_a_runtime() -> None:
    """`rag kb list`, `rag --help` and the like start without torch, transformers, onnxruntime (seconds of imports)."""
    code = "import sys, rag.cli; print(sorted({'torch', 'transformers', 'onnxruntime'} & set(sys.modules)))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True)
    assert done.stdout.strip() == "[]", done.stdout
