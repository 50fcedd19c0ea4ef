"""torchvision's ResNet written out in plain ``torch.nn``, for machines where torchvision cannot be
imported (PyPI's torchvision wheels are CUDA builds that fail to load beside the CPU torch wheel
CI uses: "operator torchvision::nms does not exist").

It mirrors ``torchvision/models/resnet.py`` (v0.28) exactly where it matters: module and
``state_dict`` key names (``conv1``, ``bn1``, ``layer1.0.conv1``, ``layer1.0.downsample.0``/``.1``,
``fc``), the stem (7x7 stride 2 padding 3, ``MaxPool2d(3, 2, 1)``), BasicBlock and Bottleneck
(stride on the 3x3 conv: v1.5), ``downsample`` when stride != 1 or channels change, and
``BatchNorm2d`` defaults (eps 1e-5, momentum 0.1). With ``stem="cifar"`` and three stages it is
the CIFAR ResNet-20 in the same naming. ``tests/test_resnet_reference.py`` also runs the real
torchvision when it imports.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    def __init__(self, block, layers, num_classes=1000, widths=(64, 128, 256, 512), stem="imagenet", in_channels=3):
        super().__init__()
        self.inplanes = widths[0] if stem == "imagenet" else 16
        if stem == "imagenet":
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 7, 2, 3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        else:
            self.conv1 = nn.Conv2d(in_channels, self.inplanes, 3, 1, 1, bias=False)
            self.maxpool = nn.Identity()
        self.bn1 = nn.BatchNorm2d(self.inplanes)
        self.relu = nn.ReLU(inplace=True)
        for i, (count, width) in enumerate(zip(layers, widths), start=1):
            setattr(self, f"layer{i}", self._make_layer(block, width, count, stride=1 if i == 1 else 2))
        self.num_stages = len(layers)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(widths[-1] * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride, bias=False),
                                       nn.BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for i in range(1, self.num_stages + 1):
            x = getattr(self, f"layer{i}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))


def resnet18(num_classes=1000):
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes)


def resnet50(num_classes=1000):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes)


def resnet20(num_classes=10):
    return ResNet(BasicBlock, [3, 3, 3], num_classes, widths=(16, 32, 64), stem="cifar")


def randomise_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics and affine parameters, so that a test of inference-mode
    BatchNorm is not passed by an identity (fresh BN has mean 0, var 1, scale 1, bias 0)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.4 - 0.2)
    return model.eval()


def import_real_torchvision():
    """The real torchvision, or ``None``. PyPI's CUDA wheel of torchvision fails at import beside
    the CPU torch wheel only because its compiled ops (``torchvision::nms`` ...) cannot load; the
    ResNet models are plain Python and do not need them. If the import fails for that reason, the
    missing op *schemas* are declared (no kernels) and the import retried."""
    import importlib
    import importlib.util
    import re
    import sys

    if importlib.util.find_spec("torchvision") is None:
        return None
    lib = None
    for _ in range(20):
        try:
            return importlib.import_module("torchvision")
        except RuntimeError as exc:
            m = re.search(r"operator torchvision::(\w+) does not exist", str(exc))
            if not m:
                return None
            for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
                del sys.modules[name]
            lib = lib or torch.library.Library("torchvision", "FRAGMENT")
            lib.define(f"{m.group(1)}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
            import_real_torchvision._lib = lib  # keep the schemas registered
        except ImportError:
            return None
    return None
