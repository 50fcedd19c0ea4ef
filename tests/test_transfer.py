"""The shipped checkpoints are worth starting from: with a small label budget, fine-tuning the
pretrained model beats the same recipe from random weights. Runs whole cells in-process
through the worker code path (the subprocess layer is covered by the CLI tests)."""

import numpy as np
import pytest

from conftest import needs_plugin
from harness.plan.cells import Cell, CellPlan, Settings
from harness.worker.cell import run_plan

SEEDS = (0, 1, 2)


def accuracy(model: str, init: str, seed: int) -> float:
    plan = CellPlan(
        run_id="transfer", cell=Cell("torch", model, "digits-10shot", batch_size=20, init=init),
        settings=Settings(epochs=30, threads=1, seed=seed, windows=1, latency_samples=5),
        modules=("zoo_torch",), checkpoint=f"{model}-digits0to4" if init == "pretrained" else "",
    )
    record = run_plan(plan)
    assert record.status == "ok", record.error
    return record.metrics["accuracy"].value


@pytest.mark.slow
@needs_plugin("zoo-torch")
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_pretrained_beats_scratch_with_ten_labels_per_class(model):
    pretrained = [accuracy(model, "pretrained", s) for s in SEEDS]
    scratch = [accuracy(model, "scratch", s) for s in SEEDS]
    print(f"{model}: pretrained {pretrained} scratch {scratch}")
    assert np.mean(pretrained) > np.mean(scratch) + 1.0, (pretrained, scratch)
