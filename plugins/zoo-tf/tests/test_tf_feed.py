"""zoo-tf's feed: the split is staged once per call and every step gathers its batch from it
by the host's index arrays, in the host's order (repeated rows, repeated batches, permutations),
for one input (images) and several (the BERT family's tokens and mask)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

from zoo.contract import EvalData, FineTuneConfig, TrainData  # noqa: E402
from zoo.models.inputs import select  # noqa: E402
from zoo.testing import RecordingMeter  # noqa: E402
from zoo_tf import adapter  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402
from zoo_tf.training import Feed, input_signature  # noqa: E402
from zoo.testing.feed_cases import BATCH, CLASSES, MODELS, N, ORDER, inputs, load, written_out  # noqa: E402

FEED = "device-resident: split staged once per call, batches gathered by the host's indices"


VARIANTS = ("graph", "xla", "eager")
FW = TFFramework()


def fine_tune(fw, name, data):
    meter = RecordingMeter()
    result = fw.fine_tune(load(fw, name), data, FineTuneConfig(learning_rate=1e-2), meter)
    return np.asarray(result.losses), fw.export_weights(result.model), meter


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_fine_tune_trains_on_the_hosts_batches_in_its_order(name, variant):
    fw = TFFramework(variant=variant)
    x, y = inputs(name), np.random.default_rng(3).integers(0, CLASSES, N)
    losses, after, meter = fine_tune(fw, name, TrainData(x, y, ORDER))
    x2, rows, order2 = written_out(x, ORDER)
    expected_losses, expected, _ = fine_tune(fw, name, TrainData(x2, y[rows], order2))
    assert len(losses) == len(meter.durations_s) == 6 and meter.epochs_ended == 2 and meter.nested == 0
    np.testing.assert_allclose(losses, expected_losses, rtol=1e-6, atol=1e-7)
    for key, value in expected.items():
        np.testing.assert_allclose(after[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
    # and the order is used: the same batches, epochs swapped, train to other weights
    _, other, _ = fine_tune(fw, name, TrainData(x, y, ORDER[::-1]))
    assert any(not np.allclose(other[key], after[key], rtol=0, atol=1e-6) for key in after)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", sorted(MODELS))
def test_evaluate_returns_the_rows_of_the_hosts_batches_in_order(name, variant):
    fw = TFFramework(variant=variant)
    x = inputs(name, n=10)
    order = (np.array([9, 0, 0, 4]), np.array([1, 2, 3, 4]), np.array([9, 0, 0, 4]), np.array([7, 7, 7, 7]))
    model = load(fw, name)
    meter = RecordingMeter()
    logits = fw.evaluate(model, EvalData(x, order), meter)
    assert logits.shape == (16, CLASSES) and meter.samples == [BATCH] * 4
    rows = np.concatenate(order)
    expected = fw.evaluate(model, EvalData(select(x, rows), tuple(np.arange(i, i + 4) for i in range(0, 16, 4))),
                           RecordingMeter())
    np.testing.assert_allclose(logits, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(logits[0], logits[8])  # the repeated batch
    np.testing.assert_array_equal(logits[12], logits[15])  # the repeated row


def test_feed_gathers_each_staged_input_and_the_labels_at_the_step_counter():
    """Several inputs (tokens and mask, int32): one staged variable per input."""
    spec, shape = MODELS["bert-tiny"]
    x, y = inputs("bert-tiny", n=9), np.arange(9) % CLASSES
    order = (np.array([8, 1, 1, 0]), np.array([0, 8, 4, 4]), np.array([2, 2, 2, 2]))
    feed = Feed(input_signature(spec.inputs(shape), BATCH), labels=True)
    feed.stage(x, y)
    for _ in range(2):  # a second epoch restarts at its first step
        feed.start(order)
        for idx in order:
            xb, yb = feed.batch()
            assert set(xb) == {"tokens", "mask"}
            for key, array in x.items():
                assert xb[key].dtype.name == "int32"
                np.testing.assert_array_equal(xb[key].numpy(), array[idx])
            np.testing.assert_array_equal(yb.numpy(), y[idx])
    image = Feed(input_signature(MODELS["mlp"][0].inputs((8, 8, 1)), 2), labels=False)
    pixels = inputs("mlp", n=5)["image"]
    image.stage({"any name": pixels})  # one input: its only array, whatever its name
    image.start((np.array([4, 1]),))
    xb, yb = image.batch()
    assert yb is None and tuple(xb.shape) == (2, 8, 8, 1)  # one input: a tensor, not a dict
    np.testing.assert_array_equal(xb.numpy(), pixels[[4, 1]])


def test_info_records_the_feed():
    assert FW.info().details["feed"] == FEED == adapter.FEED
