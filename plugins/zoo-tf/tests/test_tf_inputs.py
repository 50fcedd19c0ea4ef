"""The TF adapter builds its Keras inputs and traced step signatures from a model's declared
inputs (int32 token ids and mask, not an assumed float32 image), and loads an embedding table by
its role: a text model family added to ``FAMILIES`` alone runs through load, evaluate, fine-tune
and export."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np
import pytest

pytest.importorskip("tensorflow", reason="TensorFlow is not installed (pip install 'zoo-tf[cpu]')")

import zoo_tf.adapter  # noqa: E402
from zoo.batching import eval_order  # noqa: E402
from zoo.contract import EvalData, FineTuneConfig, TrainData, load_kwargs  # noqa: E402
from zoo.init import init_weights  # noqa: E402
from zoo.models import InputSpec, ModelSpec, ParamSpec, image_input, text_inputs  # noqa: E402
from zoo.models.spec import dense_reference, head_params, relu  # noqa: E402
from zoo.testing import NullMeter  # noqa: E402
from zoo.testing.reference import random_inputs  # noqa: E402
from zoo_tf.adapter import TFFramework  # noqa: E402
from zoo_tf.training import input_signature  # noqa: E402

LENGTH, CLASSES = 12, 3


@dataclass(frozen=True)
class BagSpec(ModelSpec):
    """Token embeddings, masked mean, one ReLU layer, head."""

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


def bag_features(spec: BagSpec, x: dict, backbone: str):
    """The Keras features of BagSpec (the builder FAMILIES names for the family in these tests)."""
    from zoo_tf.modules import keras

    layers, ops = keras.layers, keras.ops
    embedded = layers.Embedding(spec.vocab_size, spec.dim, dtype="float32", name="embed")(x["tokens"])
    mask = ops.expand_dims(ops.cast(x["mask"], "float32"), -1)
    pooled = ops.sum(embedded * mask, axis=1) / ops.sum(mask, axis=1)
    return layers.Dense(spec.hidden, activation="relu", dtype=backbone, name="fc1")(pooled)


SPEC = BagSpec(name="bag", description="a text model for the TF tests")


@pytest.fixture
def bag_family(monkeypatch):
    monkeypatch.setitem(zoo_tf.adapter.FAMILIES, BagSpec.family, f"{__name__}:bag_features")


def test_step_signatures_follow_the_declared_dtypes():
    text = input_signature(text_inputs(LENGTH, 30), 4)
    assert set(text) == {"tokens", "mask"}
    assert all(spec.dtype.name == "int32" and tuple(spec.shape) == (4, LENGTH) for spec in text.values())
    image = input_signature((image_input((8, 8, 1)),), 4)
    assert image.dtype.name == "float32" and tuple(image.shape) == (4, 8, 8, 1)


@pytest.mark.parametrize("variant", ["graph", "eager"])
def test_a_text_family_runs_through_the_adapter_from_its_declared_inputs(bag_family, variant):
    fw = TFFramework(variant=variant)
    assert fw.supports(SPEC, "cpu", "fp32").ok
    weights = init_weights(SPEC, (LENGTH,), CLASSES, seed=0)
    model = fw.load_pretrained(**load_kwargs(fw, spec=SPEC, weights=weights, input_shape=(LENGTH,),
                                             num_classes=CLASSES, device="cpu", precision="fp32", freeze="none"))
    exported = fw.export_weights(model)
    assert all(np.array_equal(exported[k], weights[k]) for k in weights)  # the table is not transposed
    x = random_inputs(SPEC.inputs((LENGTH,)), 10, seed=1)
    logits = fw.evaluate(model, EvalData(x, eval_order(10, 4)), NullMeter())[:10]
    np.testing.assert_allclose(logits, SPEC.reference_forward(weights, x), atol=1e-5)
    y = np.arange(10) % CLASSES
    result = fw.fine_tune(model, TrainData(x, y, ((np.arange(4), np.arange(4, 8)),)), FineTuneConfig(), NullMeter())
    assert len(result.losses) == 2 and np.all(np.isfinite(result.losses))
    after = fw.export_weights(result.model)
    assert not np.array_equal(after["embed.table"], weights["embed.table"])
    if variant == "graph":
        (step, _optimizer), forward = [model.compiled[k] for k in (("train", 4, FineTuneConfig()), ("forward", 4))]
        assert step.experimental_get_tracing_count() == forward.experimental_get_tracing_count() == 1
