"""The conformance suite (zoo.testing) passes a correct adapter and catches each kind of broken
one with a message that says what is wrong: in-process, on small NumPy and torch adapters
written here (independent of the built-in plugins)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from zoo.contract import FineTuneResult, Framework, FrameworkInfo, Meter, Support
from zoo.testing import (
    CHECKS, FAILED, NOT_APPLICABLE, NOT_IMPLEMENTED, PASSED, SKIPPED, ConformanceFailure, run_conformance,
)

FAST = dict(models=["mlp"])  # the MLP's NumPy reference is the quickest


class Reference(Framework):
    """A correct inference-only adapter: the NumPy reference itself."""

    name = "fake"
    display_name = "Fake"
    packages = ("numpy",)
    can_train = False

    def supports(self, spec, device, precision):
        return Support.yes() if device == "cpu" else Support.no("cpu only")

    def prepare(self, runtime):
        pass

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ("cpu",), {"threads": 1})

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        spec.check_weights(weights, input_shape, num_classes)
        return spec, {k: np.array(v, dtype=np.float32) for k, v in weights.items()}

    def fine_tune(self, model, data, config, meter):
        raise NotImplementedError("inference only")

    def forward(self, model, x):
        spec, weights = model
        return spec.reference_forward(weights, x).astype(np.float32)

    def evaluate(self, model, data, meter):
        outputs = []
        for x in data.batches():
            with meter.step(len(x)):
                outputs.append(self.forward(model, x))
        return np.concatenate(outputs)

    def export_weights(self, model):
        return {k: v.copy() for k, v in model[1].items()}


def statuses(report, check):
    return {r.subject: r.status for r in report.results_for(check)}


def messages(report, check):
    return " | ".join(r.message for r in report.results_for(check))


def test_a_correct_inference_only_adapter_conforms():
    report = run_conformance(Reference(), **FAST)
    assert report.ok, report.format(tracebacks=True)
    assert report.status_of("fine-tune") == NOT_APPLICABLE and "can_train = False" in messages(report, "fine-tune")
    assert statuses(report, "sync") == {"evaluate": PASSED, "fine_tune": NOT_APPLICABLE}
    # an adapter object was given, not a name: there is nothing to discover
    assert report.status_of("discovery") == SKIPPED and report.status_of("lazy-import") == SKIPPED
    assert report.to_dict()["checks"]["load"] == PASSED and report.models == ["mlp"]


def test_work_done_after_the_timed_step_fails_the_sync_check():
    class Lazy(Reference):
        def evaluate(self, model, data, meter):
            pending = []
            for x in data.batches():
                with meter.step(len(x)):
                    pending.append(x)  # like an async dispatch: the step ends before any work
            return np.concatenate([self.forward(model, x) for x in pending])

    report = run_conformance(Lazy(), checks=["sync"], **FAST)
    assert statuses(report, "sync")["evaluate"] == FAILED, report.format()
    assert "end before the work they time" in messages(report, "sync")
    assert "block_until_ready" in messages(report, "sync")


def test_a_method_raising_not_implemented_is_reported_as_not_implemented_yet():
    class Skeleton(Reference):
        def evaluate(self, model, data, meter):
            raise NotImplementedError("TODO: run the forward pass")

    report = run_conformance(Skeleton(), **FAST)  # never raises
    assert not report.ok
    assert report.status_of("evaluate") == NOT_IMPLEMENTED and report.status_of("load") == NOT_IMPLEMENTED
    assert "not implemented yet: Skeleton.evaluate raised NotImplementedError: TODO: run the forward pass" in \
        messages(report, "evaluate")
    assert report.status_of("export") == PASSED  # the parts that do work still pass
    assert "TODO" in report.format()
    with pytest.raises(ConformanceFailure, match="not implemented yet"):
        report.assert_passed("evaluate")


def test_nchw_flatten_order_fails_load_on_the_three_channel_input_only():
    class ChannelsFirst(Reference):
        def forward(self, model, x):
            nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2)).reshape(x.shape)  # flattens C, H, W
            return super().forward(model, nchw)

    report = run_conformance(ChannelsFirst(), checks=["load"], **FAST)
    assert statuses(report, "load") == {"mlp": FAILED}
    assert "8x8x1 matches but 9x9x3 does not" in messages(report, "load")
    assert "NHWC" in messages(report, "load")


@pytest.mark.parametrize("broken, check, expected", [
    ("one_step", "evaluate", "timed 1 steps with meter.step, expected 2"),
    ("float64_export", "export", "float32"),
    ("bad_memory", "memory", "non-negative int number of bytes"),
    ("bad_info", "info", "JSON-serialisable"),
    ("bad_supports", "plan", "return Support.yes()"),
])
def test_contract_violations_are_named(broken, check, expected):
    class Broken(Reference):
        def evaluate(self, model, data, meter):
            if broken != "one_step":
                return super().evaluate(model, data, meter)
            with meter.step(len(data.order) * data.batch_size):
                return np.concatenate([self.forward(model, x) for x in data.batches()])

        def export_weights(self, model):
            out = super().export_weights(model)
            return {k: v.astype(np.float64) for k, v in out.items()} if broken == "float64_export" else out

        def memory(self, device):
            return {"peak_bytes": 1.5} if broken == "bad_memory" else {}

        def info(self):
            info = super().info()
            return FrameworkInfo(info.name, info.versions, info.devices, {"device": object()}) \
                if broken == "bad_info" else info

        def supports(self, spec, device, precision):
            return True if broken == "bad_supports" else super().supports(spec, device, precision)

    report = run_conformance(Broken(), checks=[check], **FAST)
    assert report.status_of(check) == FAILED, report.format()
    assert expected in messages(report, check)


def test_prepare_raising_skips_the_checks_that_need_it():
    class NoRuntime(Reference):
        def prepare(self, runtime):
            raise RuntimeError("no runtime on this machine")

    report = run_conformance(NoRuntime(), **FAST)
    assert report.status_of("plan") == PASSED
    assert "NoRuntime.prepare raised RuntimeError: no runtime on this machine" in messages(report, "info")
    assert all(report.status_of(c) == SKIPPED for c in ("load", "evaluate", "export", "sync"))


def test_an_unknown_framework_name_fails_discovery_and_says_how_to_register():
    report = run_conformance("no-such-framework")
    assert report.status_of("discovery") == FAILED
    assert "[project.entry-points.zoo]" in messages(report, "discovery")
    assert all(report.status_of(c) == SKIPPED for c in CHECKS[1:])


def test_unknown_checks_and_models_are_refused():
    with pytest.raises(ValueError, match="unknown checks"):
        run_conformance(Reference(), checks=["speed"])
    with pytest.raises(ValueError, match="unknown models"):
        run_conformance(Reference(), models=["vgg"])


def test_importing_the_kit_imports_no_framework_and_not_the_host():
    code = ("import sys, zoo.testing, zoo.testing.pytest_plugin; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'jax', 'harness') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# -- training adapters: a small torch MLP adapter with switchable mistakes ---------------------

class TinyTorch(Framework):
    """A correct trainable torch adapter for the MLP (written here, not the zoo-torch plugin)."""

    name = "tinytorch"
    packages = ("torch",)
    optimizer, reduction, honour_freeze, end_epochs, decay = "adam", "mean", True, True, None

    def supports(self, spec, device, precision):
        return Support.yes() if spec.family == "mlp" and device == "cpu" else Support.no("mlp on cpu only")

    def prepare(self, runtime):
        import torch

        torch.set_num_threads(runtime.threads)
        torch.manual_seed(runtime.seed)

    def info(self):
        import torch

        return FrameworkInfo(self.name, {"torch": torch.__version__}, ("cpu",))

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        import torch

        trainable = spec.trainable_names(freeze if self.honour_freeze else "none", input_shape, num_classes)
        params = {k: torch.nn.Parameter(torch.tensor(np.asarray(v, dtype=np.float32)), requires_grad=k in trainable)
                  for k, v in weights.items()}
        return params

    @staticmethod
    def forward(params, x):
        import torch

        h, i = torch.from_numpy(np.ascontiguousarray(x)).reshape(len(x), -1), 1
        while f"fc{i}.kernel" in params:
            h, i = torch.relu(h @ params[f"fc{i}.kernel"] + params[f"fc{i}.bias"]), i + 1
        return h @ params["head.kernel"] + params["head.bias"]

    def fine_tune(self, model, data, config, meter: Meter):
        import torch
        import torch.nn.functional as F

        trainable = [p for p in model.values() if p.requires_grad]
        kwargs = dict(lr=config.learning_rate, betas=(config.beta1, config.beta2), eps=config.eps,
                      weight_decay=config.weight_decay if self.decay is None else self.decay)
        opt = {"adam": lambda: torch.optim.Adam(trainable, **kwargs),
               "adamw": lambda: torch.optim.AdamW(trainable, **kwargs),
               "sgd": lambda: torch.optim.SGD(trainable, lr=config.learning_rate)}[self.optimizer]()
        losses = []
        for epoch in data.order:
            for idx in epoch:
                x, y = data.x[idx], data.y[idx]
                with meter.step(len(x)):
                    opt.zero_grad()
                    loss = F.cross_entropy(self.forward(model, x), torch.from_numpy(y), reduction=self.reduction)
                    loss.backward()
                    opt.step()
                losses.append(float(loss.detach()))
            if self.end_epochs and hasattr(meter, "end_epoch"):
                meter.end_epoch(model)
        return FineTuneResult(model, losses)

    def evaluate(self, model, data, meter):
        import torch

        outputs = []
        with torch.no_grad():
            for x in data.batches():
                with meter.step(len(x)):
                    outputs.append(self.forward(model, x).numpy().astype(np.float32))
        return np.concatenate(outputs)

    def export_weights(self, model):
        return {k: p.detach().numpy().copy() for k, p in model.items()}


@pytest.fixture(autouse=True)
def keep_torch_threads():
    """TinyTorch.prepare sets torch's thread count, as an adapter does in its worker; restore it."""
    torch = sys.modules.get("torch")
    threads = torch.get_num_threads() if torch else None
    yield
    if threads is not None:
        torch.set_num_threads(threads)


def tiny_torch(**mistakes) -> TinyTorch:
    pytest.importorskip("torch", reason="torch is not installed (make test installs it)")
    adapter = TinyTorch()
    for key, value in mistakes.items():
        setattr(adapter, key, value)
    return adapter


def test_a_correct_training_adapter_conforms():
    report = run_conformance(tiny_torch(), checks=["plan", "load", "evaluate", "export", "fine-tune"], **FAST)
    assert report.ok, report.format(tracebacks=True)
    assert set(statuses(report, "fine-tune")) == {"mlp: adam step", "mlp: freeze backbone", "mlp: schedule"}


@pytest.mark.parametrize("mistake, subject, expected", [
    ({"optimizer": "sgd"}, "mlp: adam step", "moves no entry by more than the learning rate"),
    ({"optimizer": "adamw"}, "mlp: adam step", "not decoupled as in AdamW"),
    ({"decay": 0.0}, "mlp: adam step", "did not take torch's first Adam step"),
    ({"reduction": "sum"}, "mlp: adam step", "averaged over the batch"),
    ({"honour_freeze": False}, "mlp: freeze backbone", "changed although freeze='backbone'"),
    ({"end_epochs": False}, "mlp: schedule", "meter.end_epoch 0 times"),
])
def test_training_mistakes_fail_the_fine_tune_check(mistake, subject, expected):
    from zoo.testing.training import EPOCH_HOOK

    if "end_epochs" in mistake and not EPOCH_HOOK:
        pytest.skip("this zoo's Meter has no end_epoch")
    report = run_conformance(tiny_torch(**mistake), checks=["fine-tune"], **FAST)
    result = {r.subject: r for r in report.results_for("fine-tune")}[subject]
    assert result.status == FAILED and expected in result.message, report.format()
