"""Model inputs beyond NHWC images: a model declares its inputs (InputSpec), task data and the
contract's TrainData/EvalData carry one array per input, and the conformance suite builds its
inputs from the declarations. Proven with a tiny text model (token ids and a mask) written
here, outside zoo: no zoo, host or kit file knows it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import pytest

from zoo.contract import EvalData, FineTuneResult, Framework, FrameworkInfo, Support, TrainData
from zoo.models import InputSpec, ModelSpec, ParamSpec, builtin_model, image_input, text_inputs
from zoo.models.inputs import batch_form, inputs_mismatch, select
from zoo.models.spec import ExampleShapes, dense_reference, head_params, relu
from zoo.tasks import Task, TaskData
from zoo.testing import NOT_APPLICABLE, PASSED, run_conformance


@dataclass(frozen=True)
class BagOfTokensSpec(ModelSpec):
    """Token and position embeddings, a masked mean over the real tokens, one ReLU layer, head."""

    family: ClassVar[str] = "bag-of-tokens"
    vocab_size: int = 50
    dim: int = 8
    hidden: int = 12

    def inputs(self, input_shape: tuple[int, ...]) -> tuple[InputSpec, ...]:
        return text_inputs(input_shape[0], self.vocab_size)

    def example_shapes(self) -> ExampleShapes:
        return ExampleShapes((16,), (7,), (64,))

    def parameters(self, input_shape: tuple[int, ...], num_classes: int) -> list[ParamSpec]:
        return [ParamSpec("embed.table", (self.vocab_size, self.dim), role="embedding"),
                ParamSpec("pos.table", (input_shape[0], self.dim), role="embedding"),
                ParamSpec("fc1.kernel", (self.dim, self.hidden), role="dense_kernel"),
                ParamSpec("fc1.bias", (self.hidden,), role="bias"),
                *head_params(self.hidden, num_classes)]

    def forward_flops(self, input_shape: tuple[int, ...], num_classes: int) -> int:
        return 2 * self.dim * self.hidden + 2 * self.hidden * num_classes

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        tokens, mask = x["tokens"], x["mask"].astype(np.float64)
        e = weights["embed.table"].astype(np.float64)[tokens] + weights["pos.table"].astype(np.float64)[None]
        pooled = (e * mask[..., None]).sum(axis=1) / mask.sum(axis=1, keepdims=True)
        h = relu(dense_reference(pooled, weights["fc1.kernel"], weights["fc1.bias"]))
        return dense_reference(h, weights["head.kernel"], weights["head.bias"])


BAG = BagOfTokensSpec(name="bag-of-tokens", description="a text model written in a test")


class ReferenceV3(Framework):
    """An inference-only contract-3 adapter for any model: the reference forward pass."""

    name = "refv3"
    packages = ("numpy",)
    contract_version = 3
    can_train = False
    received: list = []  # (model name, inputs) of every load_pretrained call

    def supports(self, spec, device, precision):
        return Support.yes() if device == "cpu" else Support.no("cpu only")

    def prepare(self, runtime):
        pass

    def info(self):
        return FrameworkInfo(self.name, {"numpy": np.__version__}, ("cpu",))

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze, inputs=None):
        type(self).received.append((spec.name, inputs))
        spec.check_weights(weights, input_shape, num_classes)
        return spec, {k: np.array(v, dtype=np.float32) for k, v in weights.items()}

    def fine_tune(self, model, data, config, meter):
        raise NotImplementedError

    def evaluate(self, model, data, meter):
        out = []
        for x in data.batches():
            with meter.step(data.batch_size):
                out.append(model[0].reference_forward(model[1], x).astype(np.float32))
        return np.concatenate(out)

    def export_weights(self, model):
        return {k: v.copy() for k, v in model[1].items()}


class ImageOnlyV2(ReferenceV3):
    """The same adapter declaring contract 2: it knows nothing of inputs."""

    name = "refv2"
    contract_version = 2

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze):
        return super().load_pretrained(spec, weights, input_shape, num_classes, device, precision, freeze)


# -- InputSpec and the model's declaration --------------------------------------------------------

def test_an_input_spec_takes_its_dtype_from_its_kind_and_refuses_nonsense():
    assert InputSpec("tokens", (128,), "tokens", vocab_size=10).dtype == "int32"
    assert image_input((8, 8, 1)) == InputSpec("image", (8, 8, 1), "image", "float32")
    for kwargs, message in [
        (dict(name="x", shape=(8, 8), kind="image"), "3 positive sizes"),
        (dict(name="x", shape=(4,), kind="tokens"), "needs vocab_size"),
        (dict(name="x", shape=(4,), kind="mask", dtype="float32"), "is int32, not float32"),
        (dict(name="x", shape=(4,), kind="audio"), "unknown kind 'audio'"),
        (dict(name="not a name", shape=(4,), kind="features"), "identifier"),
    ]:
        with pytest.raises(ValueError, match=message):
            InputSpec(**kwargs)


def test_image_families_declare_one_image_input_and_the_text_model_tokens_and_a_mask():
    for name in ("mlp", "cnn", "resnet20"):
        assert builtin_model(name).inputs((32, 32, 3)) == (image_input((32, 32, 3)),)
    assert [(s.name, s.kind, s.dtype, s.shape) for s in BAG.inputs((16,))] == [
        ("tokens", "tokens", "int32", (16,)), ("mask", "mask", "int32", (16,))]


def test_a_task_says_tokens_with_a_mask_and_image_tasks_stay_as_they_were():
    from zoo.tasks import BUILTIN_TASKS

    digits = BUILTIN_TASKS[0]
    assert digits.input_shape == (8, 8, 1) and digits.inputs == (image_input((8, 8, 1)),)
    text = Task("reviews", "text", 2, (16,), lambda: None, inputs=text_inputs(16, vocab_size=40))
    assert inputs_mismatch(BAG.inputs(text.input_shape), text.inputs) == ""
    assert "the model needs tokens" in inputs_mismatch(BAG.inputs((16,)), digits.inputs)
    too_big = Task("big", "text", 2, (16,), lambda: None, inputs=text_inputs(16, vocab_size=99))
    assert "vocabulary has 50" in inputs_mismatch(BAG.inputs((16,)), too_big.inputs)
    with pytest.raises(ValueError, match="declare the task's inputs"):
        Task("bad", "text", 2, (16,), lambda: None)


# -- task data: arrays per input, checked against their kinds -------------------------------------

def text_data(n: int = 6, length: int = 16) -> TaskData:
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, 50, (n, length)).astype(np.int32)
    mask = np.ones((n, length), np.int32)
    return TaskData({"tokens": tokens, "mask": mask}, np.arange(n) % 2, {"tokens": tokens[:2], "mask": mask[:2]},
                    np.arange(2), inputs=text_inputs(length, vocab_size=50))


def test_task_data_hold_arrays_per_input_and_keep_x_train_for_images():
    images = np.zeros((4, 8, 8, 1), np.float32)
    data = TaskData(images, np.arange(4), images[:2], np.arange(2))
    assert data.x_train is images and data.train_inputs == {"image": images}
    text = text_data()
    assert set(text.train_inputs) == {"tokens", "mask"} and len(text.subset(train=[0, 1]).y_train) == 2
    with pytest.raises(AttributeError, match="inputs tokens, mask: use train_inputs"):
        text.x_train


@pytest.mark.parametrize("change, message", [
    (lambda t, m: (t.astype(np.int64), m), "must be int32"),
    (lambda t, m: (t[:, :, None], m), "must be int32"),
    (lambda t, m: (t + 50, m), r"outside \[0, 50\)"),
    (lambda t, m: (t, m * 2), "only 0 and 1"),
])
def test_task_data_refuse_arrays_that_do_not_fit_their_kind(change, message):
    tokens, mask = change(np.zeros((3, 16), np.int32), np.ones((3, 16), np.int32))
    with pytest.raises(ValueError, match=message):
        TaskData({"tokens": tokens, "mask": mask}, np.arange(3), {"tokens": tokens, "mask": mask}, np.arange(3),
                 inputs=text_inputs(16, vocab_size=50))
    with pytest.raises(ValueError, match="float32 NHWC"):
        TaskData(np.zeros((3, 8, 8, 1)), np.arange(3), np.zeros((3, 8, 8, 1)), np.arange(3))


# -- TrainData / EvalData: the contract-2 form and the multi-input form --------------------------

def test_single_input_data_batch_as_arrays_exactly_as_in_contract_2():
    x = np.arange(6 * 2, dtype=np.float32).reshape(6, 2, 1, 1)
    y = np.arange(6)
    order = ((np.array([0, 1]), np.array([2, 3])), (np.array([5, 4]),))
    data = TrainData(x, y, order)  # positional, as the host builds it
    assert data.x is x and data.batch_size == 2 and data.num_steps == 3 and data.order is order
    (xb, yb), = [b for b in data.batches()][-1:]
    assert isinstance(xb, np.ndarray) and np.array_equal(xb, x[[5, 4]]) and np.array_equal(yb, [5, 4])
    assert [len(list(e)) for e in data.epochs()] == [2, 1]
    assert list(next(data.input_batches()))[0][0].keys() == {"image"}
    ev = EvalData(x, (np.array([0, 1]), np.array([2, 0])))
    assert ev.x is x and ev.num_rows == 4 and all(isinstance(b, np.ndarray) for b in ev.batches())
    assert dataclasses.replace(data, order=order[:1]).num_steps == 2


def test_multi_input_data_batch_as_dicts_and_have_no_single_x():
    text = text_data()
    order = ((np.array([0, 1, 2]), np.array([3, 4, 5])),)
    data = TrainData(text.train_inputs, text.y_train, order, specs=text.inputs)
    xb, yb = next(data.batches())
    assert set(xb) == {"tokens", "mask"} and xb["tokens"].dtype == np.int32 and len(yb) == 3
    with pytest.raises(AttributeError, match="use .inputs"):
        data.x
    ev = EvalData(inputs=text.test_inputs, order=(np.array([0, 1]),))
    assert set(next(ev.batches())) == {"tokens", "mask"} and not ev.single_input
    with pytest.raises(ValueError, match="declared"):
        TrainData({"tokens": text.train_inputs["tokens"]}, text.y_train, order, specs=text.inputs)
    with pytest.raises(ValueError, match="labels"):
        TrainData(text.train_inputs, text.y_train[:2], order)


def test_batch_form_helpers():
    a = np.arange(4)
    assert batch_form({"image": a}) is a and select({"t": a, "m": a}, [1])["m"].tolist() == [1]


# -- the conformance suite on a text model ------------------------------------------------------------

def test_a_v3_adapter_passes_the_suite_on_a_text_model_with_inputs_from_its_declaration():
    ReferenceV3.received.clear()
    report = run_conformance(ReferenceV3(), models=[BAG, "mlp"], checks=["plan", "load", "evaluate", "export", "sync"])
    assert report.ok, report.format(tracebacks=True)
    assert {r.subject: r.status for r in report.results_for("load")} == {"bag-of-tokens": PASSED, "mlp": PASSED}
    load = next(r.message for r in report.results_for("load") if r.subject == "bag-of-tokens")
    assert "random tokens, mask 16" in load and "random 7 inputs" in load
    received = ReferenceV3.received
    assert ("bag-of-tokens", BAG.inputs((16,))) in received and ("bag-of-tokens", BAG.inputs((7,))) in received
    assert ("mlp", (image_input((8, 8, 1)),)) in received and ("mlp", (image_input((32, 32, 3)),)) in received


def test_a_v2_adapter_is_never_given_a_text_model_and_still_conforms_on_images():
    report = run_conformance(ImageOnlyV2(), models=[BAG, "mlp"], checks=["load", "evaluate", "export"])
    assert report.ok, report.format(tracebacks=True)
    bag = [r for r in report.results_for("load") if r.subject == "bag-of-tokens"]
    assert bag[0].status == NOT_APPLICABLE and "contract version 2" in bag[0].message


class TorchText(ReferenceV3):
    """A trainable contract-3 torch adapter for the text model, built from the declared inputs."""

    name = "torchtext"
    packages = ("torch",)
    can_train = True

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze, inputs=None):
        import torch

        assert [s.name for s in inputs] == ["tokens", "mask"]
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        return {k: torch.nn.Parameter(torch.tensor(np.asarray(v, np.float32), dtype=torch.float64),
                                      requires_grad=k in trainable) for k, v in weights.items()}

    @staticmethod
    def forward(p, x):
        import torch

        tokens, mask = torch.from_numpy(x["tokens"]).long(), torch.from_numpy(x["mask"]).double()
        e = p["embed.table"][tokens] + p["pos.table"][None]  # an embedding is indexed, never transposed
        pooled = (e * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return torch.relu(pooled @ p["fc1.kernel"] + p["fc1.bias"]) @ p["head.kernel"] + p["head.bias"]

    def fine_tune(self, model, data, config, meter):
        import torch
        import torch.nn.functional as F

        opt = torch.optim.Adam([p for p in model.values() if p.requires_grad], lr=config.learning_rate,
                               betas=(config.beta1, config.beta2), eps=config.eps, weight_decay=config.weight_decay)
        losses = []
        for epoch in data.input_batches():
            for x, y in epoch:
                with meter.step(len(y)):
                    opt.zero_grad()
                    loss = F.cross_entropy(self.forward(model, x), torch.from_numpy(y))
                    loss.backward()
                    opt.step()
                losses.append(float(loss.detach()))
            meter.end_epoch(model)
        return FineTuneResult(model, losses)

    def evaluate(self, model, data, meter):
        import torch

        out = []
        with torch.no_grad():
            for x in data.input_batches():
                with meter.step(data.batch_size):
                    out.append(self.forward(model, x).numpy().astype(np.float32))
        return np.concatenate(out)

    def export_weights(self, model):
        return {k: p.detach().numpy().astype(np.float32) for k, p in model.items()}


def test_a_trainable_v3_adapter_passes_the_fine_tune_check_on_token_inputs():
    pytest.importorskip("torch", reason="torch is not installed (make test installs it)")
    report = run_conformance(TorchText(), models=[BAG], checks=["load", "evaluate", "export", "fine-tune"])
    assert report.ok, report.format(tracebacks=True)
    step = {r.subject: r.message for r in report.results_for("fine-tune")}["bag-of-tokens: adam step"]
    assert "took torch's first Adam step" in step
