"""The zoo's EfficientNet-Lite (:class:`zoo.models.EfficientNetLiteSpec`) as a torch module.

Built from the spec's own block list (``mbconv_blocks``); every conv and BatchNorm is registered
at its canonical path (``blocks.3.depthwise`` ...), so a canonical name's torch key is the name
with torch's variable at the end (``blocks.3.depthwise.kernel`` -> ``blocks.3.depthwise.weight``,
``top.bn.var`` -> ``top.bn.running_var``); the head's hidden layers are ``head_fc.fc1``.

* Padding: torch's ``padding="same"`` is refused at stride 2 and pads symmetrically, so every conv
  pads explicitly with TensorFlow's ``SAME`` amounts (:func:`zoo.models.efficientnet.same_padding`,
  the extra pixel at the bottom/right), computed from the input's size at each call.
* Depthwise convs are ``Conv2d(groups=C)`` with weights ``[C, 1, k, k]`` (role
  ``depthwise_kernel``, converted in :mod:`zoo_torch.modules`). ReLU6 is ``F.relu6``.
* BatchNorm: ``eps=spec.bn_eps`` (1e-3) and ``momentum=spec.bn_momentum`` (torch's convention); a
  BatchNorm whose scale is frozen stays in eval mode in training (:meth:`EfficientNetLite.train`).
* Precision ``bf16``: the backbone's convs run under autocast; the head (float32 pooled features,
  hidden Dense+ReLU layers, classifier) always computes in float32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from zoo.models import EfficientNetLiteSpec
from zoo.models.efficientnet import STEM_WIDTH, TOP_WIDTH, same_padding
from zoo_torch.modules import Backbone
from zoo_torch.resnet import TORCH_NAMES, ResNet


def pad_same(x: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    """NCHW ``x`` zero-padded as TensorFlow's ``SAME`` for a conv of ``kernel`` and ``stride``."""
    top, bottom = same_padding(x.shape[2], kernel, stride)
    left, right = same_padding(x.shape[3], kernel, stride)
    return F.pad(x, (left, right, top, bottom)) if (top or bottom or left or right) else x


class EfficientNetLite(Backbone):
    def __init__(self, spec: EfficientNetLiteSpec, input_shape: tuple[int, ...], num_classes: int):
        super().__init__()
        self.spec = spec
        self.mbconv = spec.mbconv_blocks()
        eps, momentum = spec.bn_eps, spec.bn_momentum

        def conv_bn(conv: str, bn: str, cin: int, cout: int, k: int, stride: int, groups: int = 1) -> None:
            self._register(conv, nn.Conv2d(cin, cout, k, stride, padding=0, groups=groups, bias=False))
            self._register(bn, nn.BatchNorm2d(cout, eps=eps, momentum=momentum))

        conv_bn("stem.conv", "stem.bn", input_shape[2], STEM_WIDTH, 3, 2)
        for b in self.mbconv:
            if b.expand_ratio != 1:
                conv_bn(f"{b.name}.expand", f"{b.name}.expand_bn", b.in_channels, b.hidden, 1, 1)
            conv_bn(f"{b.name}.depthwise", f"{b.name}.depthwise_bn", b.hidden, b.hidden, b.kernel_size, b.stride,
                    groups=b.hidden)
            conv_bn(f"{b.name}.project", f"{b.name}.project_bn", b.hidden, b.out_channels, 1, 1)
        conv_bn("top.conv", "top.bn", self.mbconv[-1].out_channels, TOP_WIDTH, 1, 1)
        self.head_fc = nn.ModuleDict()
        width = TOP_WIDTH
        for j, units in enumerate(spec.head_hidden, start=1):
            self.head_fc[f"fc{j}"] = nn.Linear(width, units)
            width = units
        self.head = nn.Linear(width, num_classes)

    _register = ResNet._register

    @staticmethod
    def torch_key(canonical: str) -> str:
        layer, kind = canonical.rsplit(".", 1)
        if layer.startswith("head."):  # head.fc1.kernel -> head_fc.fc1.weight
            layer = "head_fc." + layer[len("head."):]
        return f"{layer}.{TORCH_NAMES[kind]}"

    def _conv_bn(self, conv: str, bn: str, x: torch.Tensor, act: bool = True) -> torch.Tensor:
        layer = self.get_submodule(conv)
        h = self.get_submodule(bn)(layer(pad_same(x, layer.kernel_size[0], layer.stride[0])))
        return F.relu6(h) if act else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self._autocast(x):
            h = self._conv_bn("stem.conv", "stem.bn", x.permute(0, 3, 1, 2))  # NHWC -> NCHW
            for b in self.mbconv:
                out = h
                if b.expand_ratio != 1:
                    out = self._conv_bn(f"{b.name}.expand", f"{b.name}.expand_bn", out)
                out = self._conv_bn(f"{b.name}.depthwise", f"{b.name}.depthwise_bn", out)
                out = self._conv_bn(f"{b.name}.project", f"{b.name}.project_bn", out, act=False)
                h = out + h if b.residual else out
            h = self._conv_bn("top.conv", "top.bn", h)
            pooled = h.float().mean(dim=(2, 3))
        for layer in self.head_fc.values():  # float32, outside autocast
            pooled = torch.relu(layer(pooled))
        return self.head(pooled)

    def train(self, mode: bool = True) -> "EfficientNetLite":
        """``nn.Module.train``, except that a BatchNorm whose scale is frozen stays in eval mode."""
        super().train(mode)
        for module in self.modules():
            if isinstance(module, nn.BatchNorm2d) and not module.weight.requires_grad:
                module.eval()
        return self
