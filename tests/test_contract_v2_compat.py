"""Adapters written for contract version 2 keep running unchanged under contract 3.

The plugin below is what a third party wrote against version 2: image models only, batches
from ``data.batches()``/``data.epochs()`` as NumPy NHWC arrays, ``len(x)`` per step, and a
``load_pretrained`` whose signature has exactly the seven contract-2 keywords (given ``inputs``
it would raise ``TypeError``). It trains an MLP in NumPy (backpropagation and torch's Adam
written out), so it needs no framework. It passes the conformance suite in process, and a real
``zoo bench`` cell runs it through entry-point discovery and the host's worker.
"""

from __future__ import annotations

import importlib
import json
import sys

import numpy as np
import pytest

from conftest import run_zoo
from zoo.testing import CHECKS, run_conformance

V2_PLUGIN = '''
"""An MLP in NumPy, written against zoo-bench's contract version 2."""

import numpy as np

import zoo
from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Support


class NumpyMLP(Framework):
    name = "npmlp2"
    display_name = "NumPy MLP (contract 2)"
    packages = ("numpy",)
    contract_version = 2

    def supports(self, spec, device, precision):
        if spec.family != "mlp":
            return Support.no("only MLPs")
        if device != "cpu" or precision != "fp32":
            return Support.no("cpu and fp32 only")
        return Support.yes()

    def prepare(self, runtime):
        pass

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ("cpu",))

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        assert len(input_shape) == 3, input_shape  # contract 2: NHWC images of (H, W, C)
        spec.check_weights(weights, input_shape, num_classes)
        return {"params": {k: np.array(v, dtype=np.float64) for k, v in weights.items()},
                "layers": len(spec.hidden), "trainable": spec.trainable_names(freeze, input_shape, num_classes)}

    @staticmethod
    def forward(model, x):
        p, h = model["params"], x.reshape(len(x), -1).astype(np.float64)
        acts = [h]
        for i in range(1, model["layers"] + 1):
            h = np.maximum(h @ p[f"fc{i}.kernel"] + p[f"fc{i}.bias"], 0.0)
            acts.append(h)
        return h @ p["head.kernel"] + p["head.bias"], acts

    def fine_tune(self, model, data, config, meter):
        p = model["params"]
        m = {k: np.zeros_like(v) for k, v in p.items()}
        v = {k: np.zeros_like(w) for k, w in p.items()}
        t, losses = 0, []
        for epoch in data.epochs():
            for x, y in epoch:
                assert isinstance(x, np.ndarray) and x.dtype == np.float32 and x.ndim == 4
                with meter.step(len(x)):
                    logits, acts = self.forward(model, x)
                    e = np.exp(logits - logits.max(axis=1, keepdims=True))
                    prob = e / e.sum(axis=1, keepdims=True)
                    rows = np.arange(len(y))
                    losses.append(float(-np.log(prob[rows, y]).mean()))
                    d = prob.copy()
                    d[rows, y] -= 1.0
                    d /= len(y)
                    grads = {"head.kernel": acts[-1].T @ d, "head.bias": d.sum(axis=0)}
                    dh = d @ p["head.kernel"].T
                    for i in range(model["layers"], 0, -1):
                        dz = dh * (acts[i] > 0)
                        grads[f"fc{i}.kernel"], grads[f"fc{i}.bias"] = acts[i - 1].T @ dz, dz.sum(axis=0)
                        dh = dz @ p[f"fc{i}.kernel"].T
                    t += 1
                    for k in model["trainable"]:  # torch.optim.Adam, weight decay as L2
                        g = grads[k] + config.weight_decay * p[k]
                        m[k] = config.beta1 * m[k] + (1 - config.beta1) * g
                        v[k] = config.beta2 * v[k] + (1 - config.beta2) * g * g
                        denom = np.sqrt(v[k]) / np.sqrt(1 - config.beta2 ** t) + config.eps
                        p[k] = p[k] - config.learning_rate / (1 - config.beta1 ** t) * m[k] / denom
            meter.end_epoch(model)
        return FineTuneResult(model, losses)

    def evaluate(self, model, data, meter):
        out = []
        for x in data.batches():
            assert isinstance(x, np.ndarray) and x.ndim == 4, type(x)
            with meter.step(len(x)):
                out.append(self.forward(model, x)[0].astype(np.float32))
        return np.concatenate(out)

    def export_weights(self, model):
        return {k: w.astype(np.float32) for k, w in model["params"].items()}


@zoo.hookimpl
def zoo_frameworks():
    return [NumpyMLP()]
'''


@pytest.fixture
def v2_plugin(fake_distribution):
    """The plugin as an installed distribution (entry point ``npmlp2``), and its module."""
    root = fake_distribution("zoo-npmlp2", {"npmlp2": "zoo_npmlp2"}, {"zoo_npmlp2": V2_PLUGIN})
    module = importlib.import_module("zoo_npmlp2")
    yield root, module
    sys.modules.pop("zoo_npmlp2", None)


def test_a_contract_2_adapter_passes_the_conformance_suite(v2_plugin):
    _, module = v2_plugin
    adapter = module.NumpyMLP()
    assert adapter.contract_version == 2
    report = run_conformance(adapter, checks=[c for c in CHECKS if c not in ("discovery", "lazy-import")])
    assert report.ok, report.format(tracebacks=True)
    assert report.models == ["mlp", "cnn"]
    assert {r.subject for r in report.results_for("fine-tune")} >= {"mlp: adam step", "mlp: schedule"}


@pytest.mark.slow
def test_a_contract_2_adapter_runs_a_real_bench_cell(v2_plugin, tmp_path):
    root, _ = v2_plugin
    proc = run_zoo("bench", "-f", "npmlp2", "-m", "mlp", "-t", "digits", "--epochs", "1", "--windows", "2",
                   "--results-dir", str(tmp_path), "--run-id", "v2", env={"PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (record,) = [json.loads(line) for line in (tmp_path / "v2" / "results.jsonl").read_text().splitlines()]
    assert record["status"] == "ok", record.get("error")
    assert record["environment"]["plugin"]["distribution"] == "zoo-npmlp2"
    metrics = record["metrics"]
    assert metrics["accuracy"]["value"] > 50 and metrics["train_throughput"]["value"] > 0
    assert np.isfinite(metrics["final_loss"]["value"])
