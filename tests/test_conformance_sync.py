"""The synchronisation check fails an adapter that forgets to synchronise with an asynchronous
framework, and passes the same adapter once it waits inside its steps: a small JAX adapter for
the zoo's CNN written here, whose jitted calls return before XLA has done the work (async
dispatch)."""

from __future__ import annotations

import numpy as np
import pytest

from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Support
from zoo.testing import FAILED, PASSED, run_conformance

jax = pytest.importorskip("jax", reason="jax is not installed (make test installs it)")


class TinyJax(Framework):
    """The zoo's CNN in jax with a jitted SGD step. ``sync=False`` is the classic mistake: the
    step ends after dispatch, and the results are only waited for after the loop."""

    name = "tinyjax"
    packages = ("jax",)
    sync = True

    def __init__(self):
        self.jitted = {}

    def supports(self, spec, device, precision):
        return Support.yes() if spec.family == "cnn" and device == "cpu" else Support.no("cnn on cpu only")

    def prepare(self, runtime):
        jax.config.update("jax_default_matmul_precision", "highest")

    def info(self):
        return FrameworkInfo(self.name, {"jax": jax.__version__}, ("cpu",))

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        self.spec = spec
        return {k: jax.device_put(np.asarray(v, dtype=np.float32)) for k, v in weights.items()}

    def forward(self, params, x):
        h = x
        for conv in self.spec.convs:
            pad = ((conv.padding, conv.padding),) * 2
            h = jax.lax.conv_general_dilated(h, params[f"{conv.name}.kernel"], (conv.stride,) * 2, pad,
                                             dimension_numbers=("NHWC", "HWIO", "NHWC"))
            h = jax.nn.relu(h + params[f"{conv.name}.bias"])
        return h.mean(axis=(1, 2)) @ params["head.kernel"] + params["head.bias"]

    def loss(self, params, x, y):
        return -jax.numpy.take_along_axis(jax.nn.log_softmax(self.forward(params, x)), y[:, None], axis=1).mean()

    def fine_tune(self, model, data, config, meter):
        if "step" not in self.jitted:  # compiled once per batch shape, not per call
            def sgd(params, x, y):
                loss, grads = jax.value_and_grad(self.loss)(params, x, y)
                return jax.tree.map(lambda p, g: p - config.learning_rate * g, params, grads), loss

            self.jitted["step"] = jax.jit(sgd)
        step, params, losses = self.jitted["step"], model, []
        for epoch in data.order:
            for idx in epoch:
                with meter.step(len(idx)):
                    x, y = jax.device_put(data.x[idx]), jax.device_put(data.y[idx].astype(np.int32))
                    params, loss = step(params, x, y)
                    if self.sync:
                        jax.block_until_ready((params, loss))
                losses.append(loss)
            if hasattr(meter, "end_epoch"):
                meter.end_epoch(params)
        return FineTuneResult(params, [float(v) for v in losses])

    def evaluate(self, model, data, meter):
        forward = self.jitted.setdefault("forward", jax.jit(self.forward))
        outputs = []
        for x in data.batches():
            with meter.step(len(x)):
                logits = forward(model, jax.device_put(x))
                outputs.append(np.asarray(logits) if self.sync else logits)  # to NumPy = wait for it
        return np.concatenate([np.asarray(o, dtype=np.float32) for o in outputs])

    def export_weights(self, model):
        return {k: np.asarray(v, dtype=np.float32) for k, v in model.items()}


def sync_results(sync: bool) -> dict:
    adapter = TinyJax()
    adapter.sync = sync
    report = run_conformance(adapter, checks=["sync"], models=["cnn"])
    return {r.subject: r for r in report.results_for("sync")}


def test_an_adapter_that_does_not_wait_for_async_work_fails_the_sync_check():
    results = sync_results(sync=False)
    for phase in ("evaluate", "fine_tune"):
        assert results[phase].status == FAILED, results[phase].message
        assert "the steps end before the work they time" in results[phase].message


def test_the_same_adapter_waiting_inside_its_steps_passes():
    results = sync_results(sync=True)
    assert {phase: r.status for phase, r in results.items()} == {"evaluate": PASSED, "fine_tune": PASSED}, \
        [r.message for r in results.values()]
