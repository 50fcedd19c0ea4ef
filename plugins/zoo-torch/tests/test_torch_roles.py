"""zoo-torch converts layouts by parameter role, never by rank: a dense kernel is transposed, a
conv kernel permuted to OIHW, a depthwise kernel regrouped, an embedding table (2-D too) kept as
it is; and a text model family added to ``FAMILIES`` alone runs through the adapter."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="torch is not installed")

import zoo_torch.adapter  # noqa: E402
from torch import nn  # noqa: E402
from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, TrainData, load_kwargs  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.models import InputSpec, ModelSpec, ParamSpec, text_inputs  # noqa: E402
from zoo.models.spec import dense_reference, head_params, relu  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo.testing.reference import random_inputs  # noqa: E402
from zoo_torch.adapter import TorchFramework  # noqa: E402
from zoo_torch.modules import to_canonical_layout, to_torch_layout  # noqa: E402

RNG = np.random.default_rng(0)


@pytest.mark.parametrize("role, shape, torch_shape", [
    ("dense_kernel", (3, 5), (5, 3)),
    ("conv_kernel", (3, 2, 4, 6), (6, 4, 3, 2)),
    ("depthwise_kernel", (3, 3, 4, 2), (8, 1, 3, 3)),
    ("embedding", (7, 5), (7, 5)),
    ("bias", (5,), (5,)),
])
def test_layout_conversion_goes_by_role_and_round_trips(role, shape, torch_shape):
    param = ParamSpec("layer.w", shape, role=role)
    value = RNG.standard_normal(shape).astype(np.float32)
    converted = to_torch_layout(value, param)
    assert converted.shape == torch_shape
    if role == "embedding":
        assert np.array_equal(converted, value)  # rank 2, yet never transposed
    assert np.array_equal(to_canonical_layout(np.ascontiguousarray(converted), param), value)


def test_a_depthwise_kernel_in_torch_layout_computes_the_canonical_depthwise_convolution():
    kh, kw, c, m = 3, 3, 4, 2
    kernel = RNG.standard_normal((kh, kw, c, m)).astype(np.float32)
    x = RNG.standard_normal((1, 5, 5, c)).astype(np.float32)  # NHWC
    weight = torch.from_numpy(np.ascontiguousarray(to_torch_layout(kernel, ParamSpec("dw.k", kernel.shape,
                                                                                      role="depthwise_kernel"))))
    out = torch.nn.functional.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), weight, groups=c).permute(0, 2, 3, 1)
    expected = np.zeros((1, 3, 3, c * m))
    for i in range(3):
        for j in range(3):
            patch = x[0, i:i + kh, j:j + kw, :]  # kh, kw, c
            expected[0, i, j] = np.einsum("hwc,hwcm->cm", patch, kernel).reshape(-1)  # channel c * m + k
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


LENGTH, CLASSES = 12, 3


@dataclass(frozen=True)
class BagSpec(ModelSpec):
    family: ClassVar[str] = "bag"
    vocab_size: int = 30
    dim: int = 6
    hidden: int = 5

    def inputs(self, input_shape: tuple[int, ...]) -> tuple[InputSpec, ...]:
        return text_inputs(input_shape[0], self.vocab_size)

    def parameters(self, input_shape, num_classes):
        return [ParamSpec("embed.table", (self.vocab_size, self.dim), role="embedding"),
                ParamSpec("fc1.kernel", (self.dim, self.hidden), role="dense_kernel"),
                ParamSpec("fc1.bias", (self.hidden,), role="bias"), *head_params(self.hidden, num_classes)]

    def reference_forward(self, weights: Mapping[str, np.ndarray], x: Any) -> np.ndarray:
        mask = x["mask"].astype(np.float64)[..., None]
        pooled = (weights["embed.table"].astype(np.float64)[x["tokens"]] * mask).sum(1) / mask.sum(1)
        return dense_reference(relu(dense_reference(pooled, weights["fc1.kernel"], weights["fc1.bias"])),
                               weights["head.kernel"], weights["head.bias"])


class Bag(nn.Module):
    """BagSpec in torch (the class FAMILIES names for the family in these tests)."""

    def __init__(self, spec: BagSpec, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.embed = nn.Embedding(spec.vocab_size, spec.dim)
        self.fc1 = nn.Linear(spec.dim, spec.hidden)
        self.head = nn.Linear(spec.hidden, num_classes)

    @staticmethod
    def torch_key(canonical: str) -> str:
        layer, kind = canonical.rsplit(".", 1)
        return f"{layer}.{'bias' if kind == 'bias' else 'weight'}"

    def forward(self, x: dict) -> torch.Tensor:
        mask = x["mask"].float()[..., None]
        pooled = (self.embed(x["tokens"].long()) * mask).sum(1) / mask.sum(1)
        return self.head(torch.relu(self.fc1(pooled)))


def test_a_text_family_runs_through_the_adapter_from_its_declared_inputs(monkeypatch):
    monkeypatch.setitem(zoo_torch.adapter.FAMILIES, BagSpec.family, f"{__name__}:Bag")
    spec, fw = BagSpec(name="bag", description=""), TorchFramework()
    assert fw.supports(spec, "cpu", "fp32").ok
    weights = init_weights(spec, (LENGTH,), CLASSES, seed=0)
    model = fw.load_pretrained(**load_kwargs(fw, spec=spec, weights=weights, input_shape=(LENGTH,),
                                             num_classes=CLASSES, device="cpu", precision="fp32", freeze="none"))
    assert all(np.array_equal(v, weights[k]) for k, v in fw.export_weights(model).items())
    x = random_inputs(spec.inputs((LENGTH,)), 10, seed=1)
    logits = fw.evaluate(model, EvalData(x, eval_order(10, 4)), NullMeter())[:10]
    np.testing.assert_allclose(logits, spec.reference_forward(weights, x), atol=1e-5)
    y = np.arange(10) % CLASSES
    result = fw.fine_tune(model, TrainData(x, y, ((np.arange(4), np.arange(4, 8)),)), FineTuneConfig(), NullMeter())
    assert len(result.losses) == 2 and np.all(np.isfinite(result.losses))
    assert not np.array_equal(fw.export_weights(result.model)["embed.table"], weights["embed.table"])
