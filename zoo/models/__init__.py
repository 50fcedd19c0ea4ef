"""Framework-neutral model specs. The built-in zoo is :data:`BUILTIN_MODELS`."""

from __future__ import annotations

from zoo.models.cnn import CNNSpec, ConvLayer
from zoo.models.mlp import MLPSpec
from zoo.models.spec import HEAD_PREFIX, ModelSpec, ParamSpec

BUILTIN_MODELS: tuple[ModelSpec, ...] = (
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

__all__ = ["BUILTIN_MODELS", "CNNSpec", "ConvLayer", "HEAD_PREFIX", "MLPSpec", "ModelSpec", "ParamSpec"]
