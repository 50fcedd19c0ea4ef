"""zoo-torch against the NumPy reference, on tiny real inputs."""

import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zoo.batching import eval_order, train_order  # noqa: E402
from zoo.checkpoints import load_checkpoint, read_manifest  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.init import init_weights, with_new_head  # noqa: E402
from zoo.models import BUILTIN_MODELS  # noqa: E402
from zoo.tasks import BUILTIN_TASKS  # noqa: E402
from zoo.tasks.digits import load_digits_task  # noqa: E402
from zoo_torch.adapter import TorchFramework  # noqa: E402

SPECS = {s.name: s for s in BUILTIN_MODELS}


class NullMeter:
    def __init__(self, on_epoch_end=None):
        self.steps = 0
        self.epochs = 0
        self.on_epoch_end = on_epoch_end

    @contextmanager
    def step(self, samples):
        yield
        self.steps += 1

    def end_epoch(self, model):
        self.epochs += 1
        if self.on_epoch_end:
            self.on_epoch_end(model)


@pytest.fixture(scope="module")
def fw():
    f = TorchFramework()
    f.prepare(Runtime("cpu", "fp32", threads=1, seed=0))
    return f


def load(fw, spec, weights, shape, classes, freeze="none"):
    return fw.load_pretrained(spec=spec, weights=weights, input_shape=shape, num_classes=classes,
                              device="cpu", precision="fp32", freeze=freeze)


def logits(fw, model, x, batch=16):
    out = fw.evaluate(model, EvalData(x, eval_order(len(x), batch)), NullMeter())
    return out[: len(x)]


@pytest.mark.parametrize("name", sorted(read_manifest()))
def test_logits_match_numpy_reference_on_shipped_checkpoint(fw, name):
    entry, weights = load_checkpoint(name)
    spec = SPECS[entry.model]
    tasks = {t.name: t for t in BUILTIN_TASKS}
    x = tasks[entry.source_task].load().x_test[:64]
    model = load(fw, spec, weights, entry.input_shape, entry.num_classes)
    err = np.abs(logits(fw, model, x) - spec.reference_forward(weights, x)).max()
    assert err <= 1e-4, err


@pytest.mark.parametrize("shape", [(8, 8, 1), (9, 9, 1), (7, 7, 3)])
@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_logits_match_reference_on_random_weights_and_odd_sizes(fw, name, shape):
    spec = SPECS[name]
    weights = init_weights(spec, shape, 6, seed=11)
    x = np.random.default_rng(0).random((10,) + shape, dtype=np.float32)
    err = np.abs(logits(fw, load(fw, spec, weights, shape, 6), x) - spec.reference_forward(weights, x)).max()
    assert err <= 1e-4, err


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_export_round_trips_exactly(fw, name):
    spec = SPECS[name]
    weights = init_weights(spec, (8, 8, 1), 10, seed=2)
    exported = fw.export_weights(load(fw, spec, weights, (8, 8, 1), 10))
    assert set(exported) == set(weights)
    for k in weights:
        assert exported[k].dtype == np.float32 and np.array_equal(exported[k], weights[k]), k


def test_one_adam_step_on_the_head_matches_numpy(fw):
    spec = SPECS["cnn"]
    _, source = load_checkpoint("cnn-digits0to4")
    weights = with_new_head(spec, source, (8, 8, 1), 10, seed=5)
    data = load_digits_task()
    idx = np.arange(8)
    model = load(fw, spec, weights, (8, 8, 1), 10, freeze="backbone")
    config = FineTuneConfig(learning_rate=1e-2, freeze="backbone")
    result = fw.fine_tune(model, TrainData(data.x_train, data.y_train, ((idx,),)), config, NullMeter())
    after = fw.export_weights(result.model)
    # NumPy: pooled features -> softmax CE gradient -> first Adam step = lr * g / (|g| + eps)
    feats = spec.reference_forward({**weights, "head.kernel": np.eye(64), "head.bias": np.zeros(64)}, data.x_train[idx])
    z = feats @ weights["head.kernel"] + weights["head.bias"]
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(8), data.y_train[idx]] -= 1
    g = feats.T @ p / 8
    expected = weights["head.kernel"] - 1e-2 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(after["head.kernel"], expected, rtol=1e-5, atol=1e-7)
    for k in weights:
        if not k.startswith("head."):
            assert np.array_equal(after[k], weights[k]), f"frozen {k} changed"


def test_fine_tune_times_every_step_and_learns(fw):
    spec = SPECS["mlp"]
    data = load_digits_task()
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    order = train_order(len(data.x_train), 32, 3, seed=0)
    meter = NullMeter()
    result = fw.fine_tune(load(fw, spec, weights, (8, 8, 1), 10), TrainData(data.x_train, data.y_train, order),
                          FineTuneConfig(), meter)
    assert meter.steps == len(result.losses) == sum(len(e) for e in order)
    assert np.mean(result.losses[-10:]) < 0.5 * np.mean(result.losses[:10])
    acc = (logits(fw, result.model, data.x_test).argmax(1) == data.y_test).mean()
    assert acc > 0.85


def test_importing_the_plugin_does_not_import_torch():
    code = "import sys, zoo_torch; assert 'torch' not in sys.modules"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_end_epoch_hands_over_a_model_that_evaluates(fw):
    spec = SPECS["mlp"]
    data = load_digits_task()
    weights = init_weights(spec, (8, 8, 1), 10, seed=0)
    accuracies = []
    meter = NullMeter(on_epoch_end=lambda m: accuracies.append(
        (logits(fw, m, data.x_test).argmax(1) == data.y_test).mean()))
    order = train_order(len(data.x_train), 32, 3, seed=0)
    fw.fine_tune(load(fw, spec, weights, (8, 8, 1), 10), TrainData(data.x_train, data.y_train, order),
                 FineTuneConfig(), meter)
    assert meter.epochs == 3 and accuracies[0] < accuracies[-1]


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_bf16_computes_the_backbone_in_bfloat16_and_keeps_fp32_logits(fw, name):
    spec = SPECS[name]
    entry, weights = load_checkpoint(f"{name}-digits0to4")
    x = load_digits_task().x_test[:64]
    ref = spec.reference_forward(weights, x)
    model = fw.load_pretrained(spec=spec, weights=weights, input_shape=(8, 8, 1), num_classes=5,
                               device="cpu", precision="bf16", freeze="none")
    out = logits(fw, model, x)
    assert out.dtype == np.float32
    err = np.abs(out - ref).max()
    assert 1e-4 < err <= 2e-2 * np.abs(ref).max() + 2e-2, err  # bf16-sized: active, and not wrong
    assert all(p.dtype == torch.float32 for p in model.module.parameters())


@pytest.mark.slow
def test_compile_variant_matches_the_reference(tmp_path):
    """torch.compile (inductor) needs a C++ compiler; it gives the eager numbers."""
    code = """
import numpy as np
from contextlib import contextmanager
from zoo.contract import Runtime, EvalData
from zoo.batching import eval_order
from zoo.init import init_weights
from zoo.models import BUILTIN_MODELS
from zoo_torch.adapter import TorchFramework
class M:
    @contextmanager
    def step(self, n): yield
spec = BUILTIN_MODELS[0]
fw = TorchFramework(); fw.prepare(Runtime("cpu", "fp32", 1, 0, variant="compile"))
w = init_weights(spec, (8, 8, 1), 10, 0)
m = fw.load_pretrained(spec=spec, weights=w, input_shape=(8, 8, 1), num_classes=10, device="cpu",
                       precision="fp32", freeze="none")
x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
out = fw.evaluate(m, EvalData(x, eval_order(32, 32)), M())
assert fw.info().details["variant"] == "compile"
print(np.abs(out - spec.reference_forward(w, x)).max())
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**__import__("os").environ, "TORCHINDUCTOR_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert float(proc.stdout.strip().splitlines()[-1]) <= 1e-4
