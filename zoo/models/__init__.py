"""Framework-neutral model specs. The built-in zoo is :data:`BUILTIN_MODELS`:
:data:`CORE_MODELS` (the small MLP and CNN every adapter runs) plus :data:`RESNET_MODELS`.

A spec declares what it consumes (:class:`InputSpec`, :meth:`ModelSpec.inputs`) and what each
parameter is for (:class:`ParamSpec` ``role``, one of :data:`ROLES`)."""

from __future__ import annotations

from zoo.models.bert import BERT_MODELS, BertSpec
from zoo.models.cnn import CNNSpec, ConvLayer
from zoo.models.efficientnet import EFFICIENTNET_LITE_MODELS, EfficientNetLiteSpec, MBConv
from zoo.models.inputs import INPUT_KINDS, InputSpec, image_input, text_inputs
from zoo.models.mlp import MLPSpec
from zoo.models.params import ROLES, STATE_ROLES, ParamSpec
from zoo.models.resnet import RESNET_MODELS, ConvBN, ResidualBlock, ResNetSpec
from zoo.models.spec import HEAD_PREFIX, ExampleShapes, ModelSpec

CORE_MODELS: tuple[ModelSpec, ...] = (
    MLPSpec(name="mlp", description="2 hidden layers (128, 64), ReLU", hidden=(128, 64)),
    CNNSpec(
        name="cnn",
        description="3 conv layers (16, 32 stride 2, 64), ReLU, global average pool",
        convs=(
            ConvLayer("conv1", 16, kernel_size=3, stride=1, padding=1),
            ConvLayer("conv2", 32, kernel_size=3, stride=2, padding=1),
            ConvLayer("conv3", 64, kernel_size=3, stride=1, padding=1),
        ),
    ),
)

BUILTIN_MODELS: tuple[ModelSpec, ...] = CORE_MODELS + RESNET_MODELS


def builtin_model(name: str) -> ModelSpec:
    """The built-in spec called ``name``; ``KeyError`` names the known ones."""
    for spec in BUILTIN_MODELS:
        if spec.name == name:
            return spec
    raise KeyError(f"no built-in model {name!r}; known: {', '.join(s.name for s in BUILTIN_MODELS)}")


__all__ = [
    "BERT_MODELS", "BUILTIN_MODELS", "BertSpec", "CNNSpec", "CORE_MODELS", "ConvBN", "ConvLayer", "EFFICIENTNET_LITE_MODELS",
    "EfficientNetLiteSpec", "MBConv", "ExampleShapes", "HEAD_PREFIX",
    "INPUT_KINDS", "InputSpec", "MLPSpec", "ModelSpec", "ParamSpec", "RESNET_MODELS", "ROLES", "ResNetSpec",
    "ResidualBlock", "STATE_ROLES", "builtin_model", "image_input", "text_inputs",
]
