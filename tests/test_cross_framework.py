"""Identical work across frameworks: the same checkpoint gives the same logits, one optimiser
step from the same weights and batch gives the same parameters, and the full default fine-tune
gives the same accuracy. Every installed built-in plugin takes part; with fewer than two the
comparison tests skip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import INSTALLED_FRAMEWORKS as INSTALLED
from zoo.testing import NullMeter
from conftest import needs_two_frameworks as needs_two, run_zoo
from zoo.batching import eval_order
from zoo.checkpoints import load_checkpoint
from zoo.contract import EvalData, FineTuneConfig, TrainData
from zoo.init import with_new_head
from zoo.models import BUILTIN_MODELS
from zoo.tasks.digits import load_digits_task

SPECS = {s.name: s for s in BUILTIN_MODELS}


def start_weights(model: str) -> dict[str, np.ndarray]:
    _, source = load_checkpoint(f"{model}-digits0to4")
    return with_new_head(SPECS[model], source, (8, 8, 1), 10, seed=1)


def load(adapter, model, weights, freeze="none"):
    return adapter.load_pretrained(spec=SPECS[model], weights=weights, input_shape=(8, 8, 1), num_classes=10,
                                   device="cpu", precision="fp32", freeze=freeze)


@needs_two
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_same_checkpoint_same_logits_as_numpy_reference(adapters, model):
    weights = start_weights(model)
    x = load_digits_task().x_test
    reference = SPECS[model].reference_forward(weights, x)
    for name, adapter in adapters.items():
        out = adapter.evaluate(load(adapter, model, weights), EvalData(x, eval_order(len(x), 64)), NullMeter())
        err = np.abs(out[: len(x)] - reference).max()
        assert err <= 1e-4, f"{name} {model}: max abs {err:.2e}"


@needs_two
@pytest.mark.parametrize("freeze", ["none", "backbone"])
@pytest.mark.parametrize("model", ["mlp", "cnn"])
def test_one_adam_step_gives_the_same_parameters(adapters, model, freeze):
    weights = start_weights(model)
    data = load_digits_task()
    batch = TrainData(data.x_train, data.y_train, ((np.arange(32),),))
    config = FineTuneConfig(learning_rate=1e-3, weight_decay=1e-2, freeze=freeze)
    after = {}
    for name, adapter in adapters.items():
        result = adapter.fine_tune(load(adapter, model, weights, freeze), batch, config, NullMeter())
        after[name] = adapter.export_weights(result.model)
    ref_name = INSTALLED[0]
    for name, params in after.items():
        for key, value in params.items():
            ref = after[ref_name][key]
            # relative to the tensor's scale: a per-element rtol is meaningless at exact zeros
            rel = np.abs(value - ref).max() / max(np.abs(ref).max(), 1e-12)
            assert rel <= 1e-5, f"{name} vs {ref_name}: {key} differs by {rel:.2e} relative"
            if freeze == "backbone" and not key.startswith("head."):
                assert np.array_equal(value, weights[key]), f"{name}: frozen {key} changed"
    moved = np.abs(after[ref_name]["head.kernel"] - weights["head.kernel"]).max()
    assert moved > 1e-4, "the step must actually change the head"


@pytest.mark.slow
@needs_two
def test_default_fine_tune_accuracies_agree_within_one_point(tmp_path):
    proc = run_zoo("bench", "-f", ",".join(INSTALLED), "--results-dir", str(tmp_path), "--run-id", "parity",
                   "--windows", "2", timeout=1500)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (tmp_path / "parity" / "results.jsonl").read_text().splitlines()]
    by_model: dict[str, dict[str, float]] = {}
    for r in records:
        assert r["status"] == "ok", r["error"]
        by_model.setdefault(r["cell"]["model"], {})[r["cell"]["framework"]] = r["metrics"]["accuracy"]["value"]
    print(by_model)
    for model, accs in by_model.items():
        assert set(accs) == set(INSTALLED)
        assert max(accs.values()) - min(accs.values()) <= 1.0, (model, accs)
