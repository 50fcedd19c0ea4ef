"""The zoo's ResNets (:class:`zoo.models.ResNetSpec`) as a torch module.

Built from the spec's own layer list (``stem_conv``, ``stem_pool``, ``residual_blocks``), with
every conv and BatchNorm registered at its canonical path, so the torch key of a canonical name
is the name with torch's variable name at the end: ``layer1.0.conv1.kernel`` ->
``layer1.0.conv1.weight``, ``layer1.0.bn1.mean`` -> ``layer1.0.bn1.running_mean``.

BatchNorm: ``eps=spec.bn_eps`` and ``momentum=spec.bn_momentum`` (the spec uses torch's
convention). A BatchNorm whose scale does not train (``requires_grad=False``) stays in inference
mode when the module is put in training mode (:meth:`ResNet.train`): a frozen layer neither
normalises with batch statistics nor updates its running ones.

Precision ``bf16``: under autocast the convs compute in bfloat16; ``BatchNorm2d`` takes their
bfloat16 output, computes in float32 internally (float32 parameters and running statistics) and
returns bfloat16, so the ReLUs, the residual additions and the max-pool see bfloat16; the head
computes in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models import ConvBN, ResNetSpec
from zoo_torch.modules import Backbone

#: canonical variable -> torch's, for convs, BatchNorms and the head.
TORCH_NAMES = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean", "var": "running_var"}


class ResNet(Backbone):
    def __init__(self, spec: ResNetSpec, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.spec = spec
        self.stem = spec.stem_conv(input_shape[2])
        self.blocks = spec.residual_blocks()
        units = [self.stem] + [u for b in self.blocks for u in b.convs + ((b.downsample,) if b.downsample else ())]
        for unit in units:
            conv = nn.Conv2d(unit.in_channels, unit.out_channels, unit.kernel_size, unit.stride, unit.padding,
                             bias=spec.conv_bias)
            self._register(unit.conv, conv)
            self._register(unit.bn, nn.BatchNorm2d(unit.out_channels, eps=spec.bn_eps, momentum=spec.bn_momentum))
        self.head = nn.Linear(spec.features, num_classes)

    def _register(self, path: str, module: nn.Module) -> None:
        """Add ``module`` at the dotted ``path`` (``layer1.0.conv1``), creating the containers."""
        *parents, name = path.split(".")
        parent: nn.Module = self
        for part in parents:
            if not hasattr(parent, part):
                parent.add_module(part, nn.Module())
            parent = getattr(parent, part)
        parent.add_module(name, module)

    @staticmethod
    def torch_key(canonical: str) -> str:
        layer, kind = canonical.rsplit(".", 1)
        return f"{layer}.{TORCH_NAMES[kind]}"

    def _conv_bn(self, unit: ConvBN, x: torch.Tensor) -> torch.Tensor:
        h = self.get_submodule(unit.bn)(self.get_submodule(unit.conv)(x))
        return torch.relu(h) if unit.relu else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            h = self._conv_bn(self.stem, x.permute(0, 3, 1, 2))  # NHWC -> NCHW
            if self.spec.stem_pool is not None:
                h = F.max_pool2d(h, *self.spec.stem_pool)  # (size, stride, padding); pads with -inf
            for block in self.blocks:
                shortcut = h if block.downsample is None else self._conv_bn(block.downsample, h)
                out = h
                for unit in block.convs:
                    out = self._conv_bn(unit, out)
                h = torch.relu(out + shortcut)
            pooled = h.mean(dim=(2, 3))
        return self.head(pooled.float())

    def train(self, mode: bool = True) -> "ResNet":
        """``nn.Module.train``, except that a BatchNorm whose scale is frozen stays in eval mode."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d) and not module.weight.requires_grad:
                module.eval()
        return self
