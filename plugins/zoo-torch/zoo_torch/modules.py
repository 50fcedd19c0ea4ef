"""torch modules for the zoo's model families, and canonical <-> torch weight conversion.

torch stores dense weights ``[out, in]`` and conv weights OIHW; the canonical layout is
``[in, out]`` and HWIO. The conversion goes by each parameter's role (:data:`TO_TORCH`), never
by the array's rank: an embedding table (``[rows, dim]`` in both) is copied as it is. Images
arrive NHWC and are permuted to NCHW inside ``forward``. Which class builds which family is
:data:`zoo_torch.adapter.FAMILIES`.
Each module says where a canonical name lives (``torch_key``); the tensors are its parameters
and its buffers (BatchNorm running statistics; ``num_batches_tracked`` is not a zoo tensor).
The ResNets are in :mod:`zoo_torch.resnet`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Callable, Mapping

import numpy as np
import torch
from torch import nn

from zoo.models import CNNSpec, MLPSpec, ParamSpec


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
    def __init__(self, spec: MLPSpec, input_shape: tuple[int, ...], num_classes: int):
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
    def __init__(self, spec: CNNSpec, input_shape: tuple[int, ...], num_classes: int):
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


#: role -> canonical layout to torch's, given the canonical shape; other roles (biases,
#: normalisation vectors, embedding tables) are the same in both.
TO_TORCH: Mapping[str, Callable[[np.ndarray, tuple[int, ...]], np.ndarray]] = {
    "dense_kernel": lambda a, shape: a.T,  # [in, out] -> [out, in]
    "conv_kernel": lambda a, shape: a.transpose(3, 2, 0, 1),  # HWIO -> OIHW
    # [kh, kw, C, M] -> [C * M, 1, kh, kw] (groups=C: output channel c * M + m reads channel c)
    "depthwise_kernel": lambda a, s: a.transpose(2, 3, 0, 1).reshape(s[2] * s[3], 1, s[0], s[1]),
}
#: role -> torch's layout back to the canonical one, given the canonical shape (inverse of TO_TORCH).
TO_CANONICAL: Mapping[str, Callable[[np.ndarray, tuple[int, ...]], np.ndarray]] = {
    "dense_kernel": lambda a, shape: a.T,
    "conv_kernel": lambda a, shape: a.transpose(2, 3, 1, 0),  # OIHW -> HWIO
    "depthwise_kernel": lambda a, s: a.reshape(s[2], s[3], s[0], s[1]).transpose(2, 3, 0, 1),
}


def to_torch_layout(value: np.ndarray, param: ParamSpec) -> np.ndarray:
    """``value`` (canonical layout) in torch's layout for ``param``'s role."""
    convert = TO_TORCH.get(param.role)
    return value if convert is None else convert(value, param.shape)


def to_canonical_layout(value: np.ndarray, param: ParamSpec) -> np.ndarray:
    """``value`` (torch's layout) in the canonical layout of ``param``'s role."""
    convert = TO_CANONICAL.get(param.role)
    return value if convert is None else convert(value, param.shape)


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


def load_canonical(
    module: nn.Module, weights: Mapping[str, np.ndarray], params: Mapping[str, ParamSpec]
) -> dict[str, str]:
    """Copy canonical ``weights`` into the module, converting each by the role of its ``params``
    entry; returns canonical name -> torch tensor name."""
    mapping = torch_name_map(module, list(weights))
    own = tensors(module)
    with torch.no_grad():
        for name, value in weights.items():
            target = own[mapping[name]]
            array = to_torch_layout(np.asarray(value, np.float32), params[name])
            source = torch.from_numpy(np.ascontiguousarray(array))
            if tuple(target.shape) != tuple(source.shape):
                raise ValueError(f"{name}: torch expects {tuple(target.shape)}, got {tuple(source.shape)}")
            target.copy_(source)
    return mapping


def export_canonical(module: nn.Module, mapping: Mapping[str, str],
                     params: Mapping[str, ParamSpec]) -> dict[str, np.ndarray]:
    """Every tensor as a canonical float32 array (the inverse of :func:`load_canonical`)."""
    own = tensors(module)
    return {
        name: np.ascontiguousarray(to_canonical_layout(own[key].detach().cpu().float().numpy(), params[name]))
        for name, key in mapping.items()
    }
