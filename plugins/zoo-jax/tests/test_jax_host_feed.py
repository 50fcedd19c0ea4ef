"""zoo-jax's host-pipeline feed (``zoo bench --feed host``): each batch gathered by NumPy on the
host in the host's order and put on the device one step ahead (``prefetch``), the same batches as
the device-resident feed, so the same losses, weights and logits (repeated rows and batches, a
permutation, a padded last batch; one input and BERT's two). A GPU's asynchronous transfer is
checked only where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

import jax  # noqa: E402

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.models.inputs import batch_form  # noqa: E402
from zoo.testing import RecordingMeter  # noqa: E402
from zoo_jax import adapter  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402
from zoo.testing.feed_cases import BATCH, CLASSES, MODELS, N, ORDER, inputs, load  # noqa: E402

HOST = "host pipeline: batches gathered on the host in the host's order"


def framework(feed, device="cpu"):
    f = JaxFramework()
    f.prepare(Runtime(device, "fp32", threads=2, seed=0, feed=feed))
    return f


def run(feed, name, device="cpu"):
    fw = framework(feed, device)
    x, y = inputs(name), np.random.default_rng(3).integers(0, CLASSES, N)
    meter = RecordingMeter()
    result = fw.fine_tune(load(fw, name, device=device), TrainData(x, y, ORDER), FineTuneConfig(learning_rate=1e-2), meter)
    eval_meter = RecordingMeter()
    logits = fw.evaluate(result.model, EvalData(inputs(name, n=10, seed=4), eval_order(10, BATCH)), eval_meter)
    return np.asarray(result.losses), fw.export_weights(result.model), logits, meter, eval_meter


@pytest.mark.parametrize("name", sorted(MODELS))
def test_host_feed_trains_and_evaluates_like_the_device_feed(name):
    losses, weights, logits, meter, eval_meter = run("host", name)
    d_losses, d_weights, d_logits, _, _ = run("device", name)
    assert len(losses) == len(meter.durations_s) == 6 and meter.epochs_ended == 2 and meter.nested == 0
    assert logits.shape == (12, CLASSES) and eval_meter.samples == [BATCH] * 3  # 10 rows, padded to 12
    np.testing.assert_allclose(losses, d_losses, rtol=1e-6, atol=1e-7)
    for key, value in d_weights.items():
        np.testing.assert_allclose(weights[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    np.testing.assert_allclose(logits, d_logits, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(logits[10], logits[0])  # the padding repeats row 0


def test_prefetch_puts_each_batch_on_the_device_one_step_ahead(monkeypatch):
    """Batches in order, with their labels, on the device; when step i receives its batch the
    device_put of batch i+1 has been issued (2 deep), and no further one."""
    x, y = inputs("bert-tiny", n=9), (np.arange(9) % CLASSES).astype(np.int32)
    order = (np.array([8, 1, 1, 0]), np.array([0, 8, 4, 4]), np.array([2, 2, 2, 2]))
    puts = []
    real = jax.device_put
    monkeypatch.setattr(jax, "device_put", lambda value, device=None: puts.append(1) or real(value, device))
    device = jax.devices("cpu")[0]
    batches = adapter.prefetch((batch_form(x), y), order, device)
    assert puts == []  # nothing is gathered before the first step asks
    for step, idx in enumerate(order):
        xb, yb = next(batches)
        assert len(puts) == min(step + 2, len(order))  # this batch and the next one
        assert set(xb) == {"tokens", "mask"} and isinstance(yb, jax.Array)
        for key, array in x.items():
            np.testing.assert_array_equal(np.asarray(xb[key]), array[idx])
        np.testing.assert_array_equal(np.asarray(yb), y[idx])
    assert next(batches, None) is None


def test_info_names_the_feed_and_its_mechanism():
    assert "host" in JaxFramework.feeds and "device" in JaxFramework.feeds
    host, device = framework("host").info().details["feed"], framework("device").info().details["feed"]
    assert host.startswith(HOST) and "device_put" in host
    assert device.startswith("device-resident") and device != host


def test_prepare_refuses_an_unknown_feed():
    with pytest.raises(ValueError, match="no feed 'disk'"):
        framework("disk")


def _has_gpu() -> bool:
    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


@pytest.mark.skipif(not _has_gpu(), reason="no GPU visible to jax: the host feed's asynchronous device_put to a "
                    "GPU needs one (jax.devices('gpu') is empty)")
def test_gpu_host_feed_matches_the_device_feed():
    losses, _, logits, _, _ = run("host", "cnn", "gpu")
    d_losses, _, d_logits, _, _ = run("device", "cnn", "gpu")
    np.testing.assert_allclose(losses, d_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, d_logits, rtol=1e-5, atol=1e-5)
