"""The PyTorch framework adapter. torch is imported inside the methods, never at import time,
so ``zoo --help`` and ``zoo plugins`` stay fast."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from zoo.contract import (
    EvalData,
    FineTuneConfig,
    FineTuneResult,
    Framework,
    FrameworkInfo,
    Meter,
    Runtime,
    Support,
    TrainData,
)
from zoo.models import BertSpec, CNNSpec, EfficientNetLiteSpec, InputSpec, MLPSpec, ModelSpec, ParamSpec, ResNetSpec
from zoo.plugin_host import import_object

#: Model family -> the torch module class that builds it, as "module:class" (imported only when
#: a model is built, so planning never imports torch). The one list of what zoo-torch builds:
#: ``supports`` and ``load_pretrained`` both read it.
FAMILIES: Mapping[str, str] = {
    MLPSpec.family: "zoo_torch.modules:MLP",
    CNNSpec.family: "zoo_torch.modules:CNN",
    ResNetSpec.family: "zoo_torch.resnet:ResNet",
    EfficientNetLiteSpec.family: "zoo_torch.efficientnet:EfficientNetLite",
    BertSpec.family: "zoo_torch.bert:Bert",
}


def builder(family: str) -> Callable[..., Any]:
    """The module class of ``family`` (``cls(spec, input_shape, num_classes)``), from :data:`FAMILIES`."""
    return import_object(FAMILIES[family])


#: What autocast runs in bfloat16 in the zoo's modules (torch's CPU/CUDA autocast op lists);
#: BatchNorm takes bfloat16 in and out but computes in float32 (:mod:`zoo_torch.resnet`).
BF16_OPS = ("linear", "conv2d")


@dataclass
class TorchModel:
    """The handle the host passes between calls."""

    module: Any  # torch.nn.Module
    device: Any  # torch.device
    names: Mapping[str, str]  # canonical -> torch parameter or buffer name
    trainable: frozenset[str]  # canonical names
    forward: Any = None  # the module, or its torch.compile'd version (variant "compile")
    params: Mapping[str, ParamSpec] = field(default_factory=dict)  # canonical name -> spec (its role)


class TorchFramework(Framework):
    name = "torch"
    aliases = ("pytorch",)
    display_name = "PyTorch"
    packages = ("torch",)
    contract_version = 3
    variants = {
        "eager": "eager PyTorch (default)",
        "compile": "torch.compile (inductor) of the model; compilation shows up in compile_s",
    }

    def __init__(self) -> None:
        self.variant = "eager"
        self.precision = "fp32"

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        if spec.family not in FAMILIES:
            return Support.no(f"zoo-torch has no builder for model family {spec.family!r}")
        if precision not in ("fp32", "bf16"):
            return Support.no(f"precision {precision!r} is not implemented in zoo-torch")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        return Support.yes()

    def prepare(self, runtime: Runtime) -> None:
        import torch

        self.variant = runtime.variant or "eager"
        self.precision = runtime.precision
        torch.set_num_threads(runtime.threads)
        torch.manual_seed(runtime.seed)
        # One float32 policy for every framework: full-precision matmuls, no TF32.
        torch.set_float32_matmul_precision("highest" if runtime.matmul_precision == "highest" else "high")
        torch.backends.cudnn.allow_tf32 = runtime.matmul_precision != "highest"

    def info(self) -> FrameworkInfo:
        import torch

        devices = ["cpu"] + (["gpu"] if torch.cuda.is_available() else [])
        details: dict[str, Any] = {
            "intra_op_threads": torch.get_num_threads(),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "variant": self.variant,
            "bf16_ops": list(BF16_OPS) if self.precision == "bf16" else [],
        }
        if torch.cuda.is_available():
            details["gpu_name"] = torch.cuda.get_device_name(0)
        return FrameworkInfo(
            name=self.name,
            versions={"torch": metadata.version("torch")},
            devices=devices,
            details=details,
        )

    def load_pretrained(self, spec: ModelSpec, weights: Mapping[str, np.ndarray], input_shape: tuple[int, ...],
                        num_classes: int, device: str, precision: str, freeze: str,
                        inputs: Sequence[InputSpec] | None = None) -> TorchModel:
        import torch

        from zoo_torch.modules import load_canonical

        if spec.family not in FAMILIES:
            raise ValueError(f"zoo-torch cannot build model family {spec.family!r}; it builds {', '.join(FAMILIES)}")
        spec.check_weights(weights, input_shape, num_classes)
        module = builder(spec.family)(spec, input_shape, num_classes)
        specs = {p.name: p for p in spec.parameters(input_shape, num_classes)}
        names = load_canonical(module, weights, specs)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        params = dict(module.named_parameters())  # BatchNorm statistics are buffers: never trained
        for canonical, key in names.items():
            if key in params:
                params[key].requires_grad_(canonical in trainable)
        module.bf16 = precision == "bf16"
        torch_device = torch.device("cuda" if device == "gpu" else "cpu")
        module = module.to(torch_device)
        forward = torch.compile(module) if self.variant == "compile" else module
        return TorchModel(module, torch_device, names, trainable, forward, specs)

    def fine_tune(self, model: TorchModel, data: TrainData, config: FineTuneConfig, meter: Meter) -> FineTuneResult:
        import torch
        import torch.nn.functional as F

        module, device = model.module, model.device
        params = [p for p in module.parameters() if p.requires_grad]
        # torch's Adam is the reference formula of FineTuneConfig; weight_decay is L2 in the gradient.
        optimizer = torch.optim.Adam(
            params,
            lr=config.learning_rate,
            betas=(config.beta1, config.beta2),
            eps=config.eps,
            weight_decay=config.weight_decay,
        )
        module.train()  # a ResNet keeps its frozen BatchNorms in eval mode (zoo_torch.resnet)
        cuda = device.type == "cuda"
        losses = []
        for epoch in data.epochs():
            for x, y in epoch:
                with meter.step(len(y)) as sync:
                    xb = to_tensors(x, device, non_blocking=True)
                    yb = torch.from_numpy(y).to(device, non_blocking=True)
                    optimizer.zero_grad(set_to_none=True)
                    loss = F.cross_entropy(model.forward(xb), yb)
                    loss.backward()
                    optimizer.step()
                    if sync is not False and cuda:  # CPU ops are synchronous; CUDA kernels are queued
                        torch.cuda.synchronize(device)
                losses.append(loss.detach())
            meter.end_epoch(model)
            module.train()  # the host may have evaluated (eval mode) at the epoch's end
        return FineTuneResult(model, [float(v) for v in torch.stack(losses).cpu()] if losses else [])

    def evaluate(self, model: TorchModel, data: EvalData, meter: Meter) -> np.ndarray:
        import torch

        module, device = model.module, model.device
        module.eval()
        cuda = device.type == "cuda"
        outputs = []
        with torch.inference_mode():
            for x in data.batches():
                with meter.step(data.batch_size) as sync:
                    logits = model.forward(to_tensors(x, device if cuda else None))
                    if sync is not False and cuda:  # CPU ops are synchronous; CUDA kernels are queued
                        torch.cuda.synchronize(device)
                outputs.append(logits)
            # One copy to host at the end: per step, .float().cpu().numpy() cost a few percent of
            # a small model's step (the logits are float32 already: the head computes in float32).
            return torch.cat(outputs).float().cpu().numpy()

    def export_weights(self, model: TorchModel) -> dict[str, np.ndarray]:
        from zoo_torch.modules import export_canonical

        return export_canonical(model.module, model.names, model.params)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import torch

        return {"peak_bytes": int(torch.cuda.max_memory_allocated())}


def to_tensors(x: Any, device: Any, non_blocking: bool = False) -> Any:
    """A batch in the batch form (an array, or a dict of arrays for several inputs) as torch
    tensors on ``device`` (``None``: stay on the CPU, no copy); dtypes are the declared ones."""
    import torch

    if isinstance(x, Mapping):
        return {name: to_tensors(value, device, non_blocking) for name, value in x.items()}
    tensor = torch.from_numpy(x)
    return tensor if device is None else tensor.to(device, non_blocking=non_blocking)

