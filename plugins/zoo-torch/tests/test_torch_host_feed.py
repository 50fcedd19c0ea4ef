"""zoo-torch's host-pipeline feed (``zoo bench --feed host``): each batch gathered on the host in
the host's order, the same batches as the device-resident feed, so the same losses, weights and
logits (repeated rows and batches, a permutation, a padded last batch; one input and BERT's two).
The CUDA path (pinned memory, a side stream one step ahead) runs only where a GPU is."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.testing import RecordingMeter  # noqa: E402
from zoo_torch import adapter  # noqa: E402
from zoo_torch.adapter import TorchFramework  # noqa: E402
from zoo.testing.feed_cases import BATCH, CLASSES, MODELS, N, ORDER, inputs, load  # noqa: E402

HOST = "host pipeline: batches gathered on the host in the host's order"


def framework(feed, device="cpu"):
    f = TorchFramework()
    f.prepare(Runtime(device, "fp32", threads=1, seed=0, feed=feed))
    return f


def run(feed, name, device="cpu"):
    """Fine-tune on ORDER, then evaluate a padded order, at ``feed``: losses, weights, logits, meters."""
    fw = framework(feed, device)
    x, y = inputs(name), np.random.default_rng(3).integers(0, CLASSES, N)
    meter = RecordingMeter()
    result = fw.fine_tune(load(fw, name, device=device), TrainData(x, y, ORDER), FineTuneConfig(learning_rate=1e-2), meter)
    x_test = inputs(name, n=10, seed=4)
    eval_meter = RecordingMeter()
    logits = fw.evaluate(result.model, EvalData(x_test, eval_order(10, BATCH)), eval_meter)
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


def test_host_feed_gathers_each_step_on_the_host_in_order():
    """One HostFeed batch per step: the host's rows, in the form of Feed's batches, fresh memory."""
    x, y = inputs("bert-tiny", n=9), np.arange(9) % CLASSES
    order = (np.array([8, 1, 1, 0]), np.array([0, 8, 4, 4]), np.array([2, 2, 2, 2]))
    feed = adapter.HostFeed(x, torch.device("cpu"), BATCH, labels=y)
    batches = list(feed.epoch(order))
    assert len(batches) == 3
    for (xb, yb), idx in zip(batches, order):
        assert set(xb) == {"tokens", "mask"}
        for key, array in x.items():
            assert xb[key].dtype == torch.int32
            np.testing.assert_array_equal(xb[key].numpy(), array[idx])
        assert yb.dtype == torch.int64
        np.testing.assert_array_equal(yb.numpy(), y[idx])
    image = inputs("mlp", n=5)["image"]
    (only,) = adapter.HostFeed({"image": image}, torch.device("cpu"), 2).epoch((np.array([4, 0]),))
    assert only.data_ptr() != image.ctypes.data  # gathered on the host, not the staged split


def test_info_names_the_feed_and_its_mechanism():
    assert "host" in TorchFramework.feeds and "device" in TorchFramework.feeds
    host, device = framework("host").info().details["feed"], framework("device").info().details["feed"]
    assert host.startswith(HOST) and "no copy" in host
    assert device.startswith("device-resident") and device != host


def test_prepare_refuses_an_unknown_feed():
    with pytest.raises(ValueError, match="no feed 'disk'"):
        framework("disk")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU: the pinned, side-stream copy of the "
                    "host feed needs one (torch.cuda.is_available() is False)")
def test_cuda_host_feed_copies_pinned_batches_on_a_side_stream_and_matches_the_device_feed():
    info = framework("host", "gpu").info().details["feed"]
    assert "side CUDA stream" in info
    feed = adapter.HostFeed({"image": inputs("mlp")["image"]}, torch.device("cuda"), BATCH)
    for xb, idx in zip(feed.epoch(ORDER[0]), ORDER[0]):
        assert xb.is_cuda
        np.testing.assert_array_equal(xb.cpu().numpy(), inputs("mlp")["image"][idx])
    losses, _, logits, _, _ = run("host", "cnn", "gpu")
    d_losses, _, d_logits, _, _ = run("device", "cnn", "gpu")
    np.testing.assert_allclose(losses, d_losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(logits, d_logits, rtol=1e-5, atol=1e-5)
