"""zoo-jax's feed: the split is staged once per call and every step gathers its batch from it
by the host's index arrays, in the host's order (repeated rows, repeated batches, permutations),
for one input (images) and several (the BERT family's tokens and mask)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("jax")

from zoo.contract import EvalData, FineTuneConfig, Runtime, TrainData  # noqa: E402
from zoo.models.inputs import batch_form, select  # noqa: E402
from zoo.testing import RecordingMeter  # noqa: E402
from zoo_jax import adapter  # noqa: E402
from zoo_jax.adapter import JaxFramework  # noqa: E402
from zoo.testing.feed_cases import BATCH, CLASSES, MODELS, N, ORDER, inputs, load, written_out  # noqa: E402

FEED = "device-resident: split staged once per call, batches gathered by the host's indices"


@pytest.fixture(scope="module")
def fw():
    f = JaxFramework()
    f.prepare(Runtime("cpu", "fp32", threads=2, seed=0))
    return f


def fine_tune(fw, name, data):
    meter = RecordingMeter()
    result = fw.fine_tune(load(fw, name), data, FineTuneConfig(learning_rate=1e-2), meter)
    return np.asarray(result.losses), fw.export_weights(result.model), meter


@pytest.mark.parametrize("name", sorted(MODELS))
def test_fine_tune_trains_on_the_hosts_batches_in_its_order(fw, name):
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_evaluate_returns_the_rows_of_the_hosts_batches_in_order(fw, name):
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


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_gathering_step_is_the_batch_step(fw, name):
    """The step fine_tune runs (indices into the staged split) = train_step on the gathered batch."""
    import jax

    from zoo_jax.steps import make_optimizer, train_step, train_step_at

    model = load(fw, name)
    x, y = inputs(name), (np.arange(N) % CLASSES).astype(np.int32)
    idx = np.array([5, 0, 5, 11])
    config = FineTuneConfig(learning_rate=1e-2)
    results = []
    for gathered in (True, False):
        trainable = {k: jax.numpy.copy(v) for k, v in model.params.items()}
        opt_state = make_optimizer(config).init(trainable)
        split = batch_form(x)  # an array for one input, a dict for several
        if gathered:
            out = train_step_at(model.module, config)(trainable, {}, opt_state, {}, split, y, idx)
        else:
            out = train_step(model.module, config, trainable, {}, opt_state, {}, select(split, idx), y[idx])
        results.append(jax.device_get((out[0], out[3])))
    (p1, l1), (p2, l2) = results
    np.testing.assert_allclose(l1, l2, rtol=1e-6)
    for key in p1:
        np.testing.assert_allclose(p1[key], p2[key], rtol=1e-6, atol=1e-7, err_msg=key)


def test_stage_order_keeps_the_order_and_shares_one_device_array_per_distinct_batch():
    order = (np.array([1, 2]), np.array([3, 1]), np.array([1, 2]), np.array([1, 2], dtype=np.int32))
    staged = adapter.stage_order(order, adapter._device("cpu"))
    assert [np.asarray(a).tolist() for a in staged] == [a.tolist() for a in order]
    assert staged[0] is staged[2] and staged[1] is not staged[0]
    assert staged[3] is not staged[0]  # another dtype is another array


def test_info_records_the_feed(fw):
    assert fw.info().details["feed"] == FEED == adapter.FEED
