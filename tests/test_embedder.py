"""The embedder: passes of about equal tokens, vectors back in the order of the texts."""

from __future__ import annotations

import numpy as np
import pytest

from stores import Embedder


def test_short_and_long_texts_come_back_in_order_and_equal_one_by_one(embedder: Embedder) -> None:
    texts = ["disk full", "The reservoir pumps are inspected every spring. " * 30, "ok", "Pump 7 failed at 03:12."]
    batched = embedder.embed(texts)
    alone = np.stack([embedder.embed([t])[0] for t in texts])
    assert batched.shape == (4, embedder.dimension) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, alone, atol=1e-5)


def test_short_texts_share_a_pass_up_to_the_token_budget(embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> None:
    passes: list[int] = []
    encode = embedder.model.encode

    def counting(texts, **kwargs):
        passes.append(len(texts))
        return encode(texts, **kwargs)

    monkeypatch.setattr(embedder.model, "encode", counting)
    short = [f"line {i} ok" for i in range(40)]  # 5 tokens each: all fit in 8 x 256 tokens
    long = ["word " * 400] * 9  # over the window: 8 per pass, as batch_size says
    embedder.embed(short + long)
    assert passes == [8, 1, 40]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        Embedder(batch_size=0)
