"""zoo.checks, the one module of contract checks (host worker and conformance suite), and
zoo.contract.load_kwargs, the rule for which adapters receive ``inputs``."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from zoo.checks import (
    ContractViolation, check_epoch_ends, check_exported_weights, check_logits, check_losses, check_step_count,
    check_task_data, check_task_inputs,
)
from zoo.contract import Framework, input_support, load_kwargs
from zoo.init import init_weights
from zoo.models import builtin_model, text_inputs
from zoo.tasks import BUILTIN_TASKS, Task, TaskData

MLP = builtin_model("mlp")


def host_phases():
    """The host's phases module wherever the reorganisation has put it, or skip."""
    for name in ("harness.worker.phases", "harness.phases"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    pytest.skip("the host's phases module is being moved")


@pytest.mark.parametrize("logits", [np.zeros((3, 10)), np.full((4, 10), np.nan)])
def test_check_logits_raises_the_hosts_message_so_switching_is_drop_in(logits):
    with pytest.raises(ContractViolation) as ours:
        check_logits(logits, 4, 10, "evaluate")
    assert str(ours.value) in ("evaluate: evaluate returned logits of shape (3, 10), expected (4, 10)",
                               "evaluate: evaluate returned non-finite logits (NaN or inf)")
    phases = host_phases()
    with pytest.raises(Exception) as theirs:
        phases.check_logits(logits, 4, 10, "evaluate")
    assert str(theirs.value) == str(ours.value)


def test_check_logits_returns_float32_and_is_stricter_when_asked():
    out = check_logits([[1.0, 2.0]], 1, 2, "latency")
    assert out.dtype == np.float32
    with pytest.raises(ContractViolation, match="not a NumPy array") as exc:
        check_logits([[1.0, 2.0]], 1, 2, "", strict=True)
    assert "inside its meter.step" in exc.value.hint
    with pytest.raises(ContractViolation, match="float64 logits"):
        check_logits(np.zeros((1, 2)), 1, 2, "", strict=True)


def test_step_epoch_loss_and_export_checks_name_what_is_wrong():
    with pytest.raises(ContractViolation, match="fine_tune timed 3 steps with meter.step, expected 4"):
        check_step_count(3, 4)
    with pytest.raises(ContractViolation, match="fine_tune called meter.end_epoch 1 times for 2 epochs"):
        check_epoch_ends(1, 2, contract_version=2)
    check_epoch_ends(0, 2, contract_version=1)  # version 1 had no end_epoch
    with pytest.raises(ContractViolation, match="^fine_tune returned non-finite losses$"):
        check_losses([1.0, float("nan")])
    assert check_losses([]).size == 0  # the host accepts an adapter that reports no losses
    with pytest.raises(ContractViolation, match="2 losses for 3 steps"):
        check_losses([1.0, 2.0], steps=3)
    weights = init_weights(MLP, (8, 8, 1), 10, seed=0)
    weights.pop("head.bias")
    with pytest.raises(ContractViolation, match=r"^export_weights: weights do not fit model 'mlp': missing head.bias"):
        check_exported_weights(MLP, weights, (8, 8, 1), 10)


def test_task_checks_compare_declared_inputs():
    digits = BUILTIN_TASKS[0]
    check_task_inputs(MLP, digits)
    text = Task("t", "", 2, (16,), lambda: None, inputs=text_inputs(16, vocab_size=9))
    with pytest.raises(ContractViolation, match="cannot run on task 't'"):
        check_task_inputs(MLP, text)
    assert check_task_data(digits, digits.load()) is digits.load()
    images = np.zeros((2, 8, 8, 1), np.float32)
    with pytest.raises(ContractViolation, match="declares tokens"):
        check_task_data(text, TaskData(images, np.arange(2), images, np.arange(2)))


class V2(Framework):
    name, contract_version = "v2", 2

    def supports(self, *a): ...
    def prepare(self, *a): ...
    def info(self): ...
    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze): ...
    def fine_tune(self, *a): ...
    def evaluate(self, *a): ...
    def export_weights(self, *a): ...


class V3(V2):
    name, contract_version = "v3", 3


def test_load_kwargs_passes_inputs_only_to_adapters_of_contract_3():
    common = dict(spec=MLP, weights={}, input_shape=(8, 8, 1), num_classes=10, device="cpu", precision="fp32",
                  freeze="none")
    old = load_kwargs(V2(), **common)
    assert set(old) == {"spec", "weights", "input_shape", "num_classes", "device", "precision", "freeze"}
    V2().load_pretrained(**old)  # the contract-2 signature takes exactly these
    new = load_kwargs(V3(), **common)
    assert new["inputs"] == MLP.inputs((8, 8, 1))


def test_an_old_adapter_is_refused_a_model_it_cannot_read():
    text = text_inputs(16, vocab_size=9)
    assert not input_support(V2(), text).ok and "contract version 3" in input_support(V2(), text).reason
    assert input_support(V3(), text).ok and input_support(V2(), MLP.inputs((8, 8, 1))).ok
    with pytest.raises(ValueError, match="upgrade the plugin"):
        load_kwargs(V2(), spec=MLP, weights={}, input_shape=(8, 8, 1), num_classes=10, device="cpu",
                    precision="fp32", freeze="none", inputs=text)
