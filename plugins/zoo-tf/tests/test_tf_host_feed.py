"""zoo-tf's host-pipeline feed (``zoo bench --feed host``): a ``tf.data`` pipeline gathers each
batch from the split in host memory in the host's order and prefetches it, the step taking the
batch as arguments; the same batches as the device-resident feed, so the same losses, weights
and logits in every variant (repeated rows and batches, a permutation, a padded last batch; one
input and BERT's two). ``prefetch_to_device`` runs only where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.testing import RecordingMeter  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402
from zoo_tf.training import host_pipeline, input_signature  # noqa: E402
from zoo.testing.feed_cases import BATCH, CLASSES, MODELS, N, ORDER, inputs, load  # noqa: E402

HOST = "host pipeline: batches gathered on the host in the host's order"
VARIANTS = ("graph", "xla", "eager")


def framework(feed, variant="graph", device="cpu"):
    f = TFFramework()
    f.prepare(Runtime(device, "fp32", threads=2, seed=0, variant=variant, feed=feed))  # conftest's threads
    return f


def run(feed, name, variant="graph", device="cpu"):
    fw = framework(feed, variant, device)
    x, y = inputs(name), np.random.default_rng(3).integers(0, CLASSES, N)
    meter = RecordingMeter()
    result = fw.fine_tune(load(fw, name, device=device), TrainData(x, y, ORDER), FineTuneConfig(learning_rate=1e-2), meter)
    eval_meter = RecordingMeter()
    logits = fw.evaluate(result.model, EvalData(inputs(name, n=10, seed=4), eval_order(10, BATCH)), eval_meter)
    return np.asarray(result.losses), fw.export_weights(result.model), logits, meter, eval_meter


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_host_feed_trains_and_evaluates_like_the_device_feed(name, variant):
    losses, weights, logits, meter, eval_meter = run("host", name, variant)
    d_losses, d_weights, d_logits, _, _ = run("device", name, variant)
    assert len(losses) == len(meter.durations_s) == 6 and meter.epochs_ended == 2 and meter.nested == 0
    assert logits.shape == (12, CLASSES) and eval_meter.samples == [BATCH] * 3  # 10 rows, padded to 12
    np.testing.assert_allclose(losses, d_losses, rtol=1e-6, atol=1e-7)
    for key, value in d_weights.items():
        np.testing.assert_allclose(weights[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(logits, d_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(logits[10], logits[0])  # the padding repeats row 0


def test_host_pipeline_yields_the_hosts_batches_in_order_from_host_memory():
    spec, shape = MODELS["bert-tiny"]
    x, y = inputs("bert-tiny", n=9), np.arange(9) % CLASSES
    order = (np.array([8, 1, 1, 0]), np.array([0, 8, 4, 4]), np.array([2, 2, 2, 2]))
    dataset = host_pipeline(input_signature(spec.inputs(shape), BATCH), x, order, y, "/CPU:0")
    batches = list(dataset)
    assert len(batches) == 3
    for (xb, yb), idx in zip(batches, order):
        assert set(xb) == {"tokens", "mask"} and "CPU" in xb["tokens"].device
        for key, array in x.items():
            assert xb[key].dtype == tf.int32
            np.testing.assert_array_equal(xb[key].numpy(), array[idx])
        assert yb.dtype == tf.int64
        np.testing.assert_array_equal(yb.numpy(), y[idx])


def test_info_names_the_feed_and_its_mechanism():
    assert "host" in TFFramework.feeds and "device" in TFFramework.feeds
    host, device = framework("host").info().details["feed"], framework("device").info().details["feed"]
    assert host.startswith(HOST) and "tf.data" in host and "prefetch_to_device" not in host
    assert device.startswith("device-resident") and device != host


def test_prepare_refuses_an_unknown_feed():
    with pytest.raises(ValueError, match="no feed 'disk'"):
        framework("disk")


@pytest.mark.skipif(not tf.config.list_physical_devices("GPU"), reason="no GPU visible to TensorFlow: the host "
                    "feed's prefetch_to_device needs one (tf.config.list_physical_devices('GPU') is empty)")
def test_gpu_host_feed_prefetches_to_the_device_and_matches_the_device_feed():
    spec, shape = MODELS["cnn"]
    x = inputs("cnn")
    (xb,) = list(host_pipeline(input_signature(spec.inputs(shape), BATCH), x, (ORDER[0][0],), None, "/GPU:0"))
    assert "GPU" in xb.device
    assert "prefetch_to_device" in framework("host", device="gpu").info().details["feed"]
    losses, _, logits, _, _ = run("host", "cnn", device="gpu")
    d_losses, _, d_logits, _, _ = run("device", "cnn", device="gpu")
    np.testing.assert_allclose(losses, d_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, d_logits, rtol=1e-5, atol=1e-5)
