"""torch modules for the zoo's model families, and canonical <-> torch weight conversion.

torch stores dense weights ``[out, in]`` and conv weights OIHW; the canonical layout is
``[in, out]`` and HWIO. Inputs arrive NHWC and are permuted to NCHW inside ``forward``.
Each module says where a canonical name lives (``torch_key``); the tensors are its parameters
and its buffers (BatchNorm running statistics; ``num_batches_tracked`` is not a zoo tensor).
The ResNets are in :mod:`zoo_torch.resnet`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Mapping

import numpy as np
import torch
from torch import nn

from zoo.models import CNNSpec, MLPSpec, ModelSpec, ResNetSpec


class Backbone(nn.Module):
    """Shared by the zoo's torch modules: the backbone may compute in bfloat16 under autocast
    (``bf16`` set by the adapter); the head always computes in float32 (the contract's bf16
    rule), so logits and loss stay float32."""

    bf16: bool = False

    def _autocast(self, x: torch.Tensor):
        # A disabled autocast context still costs ~5 us per forward, a tenth of the MLP's step.
        if not self.bf16:
            return nullcontext()
        return torch.autocast(device_type=x.device.type, dtype=torch.bfloat16)

    @staticmethod
    def torch_key(canonical: str) -> str:
        """``fc1.kernel`` -> ``hidden.fc1.weight``; ``conv1.bias`` -> ``convs.conv1.bias``."""
        layer, kind = canonical.rsplit(".", 1)
        kind = "weight" if kind == "kernel" else kind
        if layer == "head":
            return f"head.{kind}"
        prefix = "convs" if layer.startswith("conv") else "hidden"
        return f"{prefix}.{layer}.{kind}"


class MLP(Backbone):
    def __init__(self, spec: MLPSpec, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        width = int(np.prod(input_shape))
        self.hidden = nn.ModuleDict()
        for i, units in enumerate(spec.hidden, start=1):
            self.hidden[f"fc{i}"] = nn.Linear(width, units)
            width = units
        self.head = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            h = x.reshape(x.shape[0], -1)  # NHWC row-major, as the canonical flatten
            for layer in self.hidden.values():
                h = torch.relu(layer(h))
        return self.head(h.float())


class CNN(Backbone):
    def __init__(self, spec: CNNSpec, input_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels = input_shape[2]
        self.convs = nn.ModuleDict()
        for conv in spec.convs:
            self.convs[conv.name] = nn.Conv2d(
                channels, conv.out_channels, conv.kernel_size, stride=conv.stride, padding=conv.padding
            )
            channels = conv.out_channels
        self.head = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            h = x.permute(0, 3, 1, 2)  # NHWC -> NCHW
            for conv in self.convs.values():
                h = torch.relu(conv(h))
            pooled = h.mean(dim=(2, 3))
        return self.head(pooled.float())


def build_module(spec: ModelSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    if isinstance(spec, MLPSpec):
        return MLP(spec, input_shape, num_classes)
    if isinstance(spec, CNNSpec):
        return CNN(spec, input_shape, num_classes)
    if isinstance(spec, ResNetSpec):
        from zoo_torch.resnet import ResNet

        return ResNet(spec, input_shape, num_classes)
    raise ValueError(f"zoo-torch cannot build model family {spec.family!r}")


def _to_torch_layout(value: np.ndarray) -> np.ndarray:
    if value.ndim == 2:  # dense [in, out] -> [out, in]
        return value.T
    if value.ndim == 4:  # conv HWIO -> OIHW
        return value.transpose(3, 2, 0, 1)
    return value


def _to_canonical_layout(value: np.ndarray) -> np.ndarray:
    if value.ndim == 2:
        return value.T
    if value.ndim == 4:  # OIHW -> HWIO
        return value.transpose(2, 3, 1, 0)
    return value


def tensors(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's zoo tensors by torch name: parameters and buffers but ``num_batches_tracked``."""
    buffers = {k: v for k, v in module.named_buffers() if not k.endswith("num_batches_tracked")}
    return {**dict(module.named_parameters()), **buffers}


def torch_name_map(module: nn.Module, canonical_names: list[str]) -> dict[str, str]:
    """canonical name -> torch tensor name, checked against the module."""
    own = tensors(module)
    mapping = {name: module.torch_key(name) for name in canonical_names}
    missing = [t for t in mapping.values() if t not in own]
    if missing or len(own) != len(mapping):
        raise ValueError(f"canonical names do not match the torch module: {missing or sorted(own)}")
    return mapping


def load_canonical(module: nn.Module, weights: Mapping[str, np.ndarray]) -> dict[str, str]:
    mapping = torch_name_map(module, list(weights))
    own = tensors(module)
    with torch.no_grad():
        for name, value in weights.items():
            target = own[mapping[name]]
            source = torch.from_numpy(np.ascontiguousarray(_to_torch_layout(np.asarray(value, np.float32))))
            if tuple(target.shape) != tuple(source.shape):
                raise ValueError(f"{name}: torch expects {tuple(target.shape)}, got {tuple(source.shape)}")
            target.copy_(source)
    return mapping


def export_canonical(module: nn.Module, mapping: Mapping[str, str]) -> dict[str, np.ndarray]:
    own = tensors(module)
    return {
        name: np.ascontiguousarray(_to_canonical_layout(own[key].detach().cpu().float().numpy()))
        for name, key in mapping.items()
    }
