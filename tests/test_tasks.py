"""The embedded digits tasks and the host's batch order."""

import numpy as np
import pytest

from zoo.batching import eval_order, train_order
from zoo.tasks import BUILTIN_TASKS
from zoo.tasks.digits import load_digits_0to4, load_digits_few_shot, load_digits_task, stratified_split


def test_digits_split_is_stratified_disjoint_and_fixed():
    data = load_digits_task()
    assert data.x_train.shape[1:] == (8, 8, 1) and data.x_train.dtype == np.float32
    assert len(data.x_train) + len(data.x_test) == 1797
    assert 0.0 <= data.x_train.min() and data.x_train.max() <= 1.0
    train_counts = np.bincount(data.y_train, minlength=10)
    test_counts = np.bincount(data.y_test, minlength=10)
    np.testing.assert_allclose(test_counts / (train_counts + test_counts), 0.3, atol=0.01)
    y = np.repeat(np.arange(10), 30)
    tr, te = stratified_split(y, 0.3, 0)
    assert not set(tr) & set(te)
    tr2, te2 = stratified_split(y, 0.3, 0)
    assert np.array_equal(te, te2)


def test_few_shot_and_source_tasks():
    few = load_digits_few_shot()
    assert np.array_equal(np.bincount(few.y_train), [10] * 10)
    src = load_digits_0to4()
    assert set(src.y_train) == set(src.y_test) == {0, 1, 2, 3, 4}
    full = load_digits_task()
    # the source task's test images are the full task's test images of classes 0-4: never trained on
    assert len(src.x_test) == int((full.y_test < 5).sum())


def test_tasks_declare_consistent_shapes():
    for task in BUILTIN_TASKS:
        if task.downloads:  # tested on tiny files in tests/test_datasets.py; never downloaded here
            continue
        data = task.load()
        assert data.x_train.shape[1:] == task.input_shape
        assert data.y_train.max() < task.num_classes


def test_train_order_is_seeded_full_batches_and_reshuffled():
    order = train_order(100, 32, 3, seed=7)
    assert len(order) == 3 and all(len(epoch) == 3 for epoch in order)
    assert all(len(idx) == 32 for epoch in order for idx in epoch)
    assert all(len(set(np.concatenate(epoch))) == 96 for epoch in order)
    again = train_order(100, 32, 3, seed=7)
    assert all(np.array_equal(a, b) for ea, eb in zip(order, again) for a, b in zip(ea, eb))
    assert not np.array_equal(order[0][0], order[1][0])


def test_batch_larger_than_data_is_refused_with_a_fix():
    with pytest.raises(ValueError, match="--batch-size 10 or smaller"):
        train_order(10, 32, 1, 0)


def test_eval_order_pads_last_batch():
    order = eval_order(10, 4)
    assert [len(b) for b in order] == [4, 4, 4]
    assert list(np.concatenate(order)[:10]) == list(range(10))
