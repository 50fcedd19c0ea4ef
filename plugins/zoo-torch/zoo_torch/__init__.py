"""zoo-bench plugin for PyTorch. Importing this module does not import torch."""

from zoo import hookimpl
from zoo_torch.adapter import TorchFramework


@hookimpl
def zoo_frameworks():
    return [TorchFramework()]
