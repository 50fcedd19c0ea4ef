"""The PyTorch framework adapter. torch is imported inside the methods, never at import time,
so ``zoo --help`` and ``zoo plugins`` stay fast."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any, Mapping

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
from zoo.models import CNNSpec, MLPSpec, ModelSpec

FAMILIES = (MLPSpec.family, CNNSpec.family)


@dataclass
class TorchModel:
    """The handle the host passes between calls."""

    module: Any  # torch.nn.Module
    device: Any  # torch.device
    names: Mapping[str, str]  # canonical -> torch parameter name
    trainable: frozenset[str]  # canonical names


class TorchFramework(Framework):
    name = "torch"
    aliases = ("pytorch",)
    display_name = "PyTorch"
    packages = ("torch",)
    contract_version = 1

    def supports(self, spec: ModelSpec, device: str, precision: str) -> Support:
        if spec.family not in FAMILIES:
            return Support.no(f"zoo-torch has no builder for model family {spec.family!r}")
        if precision != "fp32":
            return Support.no(f"precision {precision!r} is not implemented in zoo-torch yet")
        if device not in ("cpu", "gpu"):
            return Support.no(f"unknown device {device!r}")
        return Support.yes()

    def prepare(self, runtime: Runtime) -> None:
        import torch

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
        }
        if torch.cuda.is_available():
            details["gpu_name"] = torch.cuda.get_device_name(0)
        return FrameworkInfo(
            name=self.name,
            versions={"torch": metadata.version("torch")},
            devices=devices,
            details=details,
        )

    def load_pretrained(self, spec, weights, input_shape, num_classes, device, precision, freeze) -> TorchModel:
        import torch

        from zoo_torch.modules import build_module, load_canonical

        module = build_module(spec, input_shape, num_classes)
        names = load_canonical(module, weights)
        trainable = spec.trainable_names(freeze, input_shape, num_classes)
        params = dict(module.named_parameters())
        for canonical, key in names.items():
            params[key].requires_grad_(canonical in trainable)
        torch_device = torch.device("cuda" if device == "gpu" else "cpu")
        return TorchModel(module.to(torch_device), torch_device, names, trainable)

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
        module.train()
        cuda = device.type == "cuda"
        losses = []
        for x, y in data.batches():
            with meter.step(len(x)):
                xb = torch.from_numpy(x).to(device, non_blocking=True)
                yb = torch.from_numpy(y).to(device, non_blocking=True)
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(module(xb), yb)
                loss.backward()
                optimizer.step()
                if cuda:
                    torch.cuda.synchronize(device)
            losses.append(loss.detach())
        return FineTuneResult(model, [float(v) for v in torch.stack(losses).cpu()] if losses else [])

    def evaluate(self, model: TorchModel, data: EvalData, meter: Meter) -> np.ndarray:
        import torch

        module, device = model.module, model.device
        module.eval()
        outputs = []
        with torch.inference_mode():
            for x in data.batches():
                with meter.step(len(x)):
                    logits = module(torch.from_numpy(x).to(device))
                    outputs.append(logits.float().cpu().numpy())  # the copy to host synchronises
        return np.concatenate(outputs)

    def export_weights(self, model: TorchModel) -> dict[str, np.ndarray]:
        from zoo_torch.modules import export_canonical

        return export_canonical(model.module, model.names)

    def memory(self, device: str) -> dict[str, int]:
        if device != "gpu":
            return {}
        import torch

        return {"peak_bytes": int(torch.cuda.max_memory_allocated())}

