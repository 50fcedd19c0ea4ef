"""Import a torchvision ResNet ``state_dict`` file (``torch.save(model.state_dict(), path)``, as
published on download.pytorch.org) into the canonical layout.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only, no
arbitrary unpickling. Conv weights OIHW -> HWIO, ``fc.weight [out, in]`` -> ``head.kernel
[in, out]``, BatchNorm ``weight/bias/running_mean/running_var`` -> ``scale/bias/mean/var``,
``num_batches_tracked`` dropped. resnet18 or resnet50 is detected from the keys and shapes;
``--model resnet50-keras`` is refused (different stride placement, same shapes).
"""

from __future__ import annotations

from pathlib import Path

from zoo.importers.base import ImportedWeights, WeightsImportError, cut_list, file_sha256
from zoo.importers.resnet_names import describe_torch_topology, match_resnet, torch_names_to_canonical

TORCH_STYLE_MODELS = ("resnet18", "resnet50", "resnet20")
KERAS_TOPOLOGY = (
    "model 'resnet50-keras' is Keras's ResNet50 (stride on the first 1x1 conv of a downsampling block, "
    "conv biases); a {source} ResNet-50 puts the stride on the 3x3 conv (v1.5). The parameter shapes "
    "match, so the weights would load and silently compute another network: import into 'resnet50' instead"
)


def read_torch_state_dict(path: Path) -> dict:
    try:
        import torch
    except ImportError:
        raise WeightsImportError("reading a torchvision .pth file needs torch: pip install torch") from None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, ...
        raise WeightsImportError(f"{path}: not a torch state_dict that loads with weights_only=True: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint wrapping the model's state_dict
    if not isinstance(state, dict) or not all(hasattr(v, "detach") for v in state.values()):
        raise WeightsImportError(f"{path}: expected a state_dict (name -> tensor), got {type(state).__name__}")
    return {k: v.detach().cpu().float().numpy() for k, v in state.items()}


def import_torchvision(path: str | Path, model: str | None = None) -> ImportedWeights:
    path = Path(path)
    state = read_torch_state_dict(path)
    weights, dropped, unknown = torch_names_to_canonical(state)
    topology = describe_torch_topology(list(state))
    if unknown:
        shown = cut_list(unknown)
        raise WeightsImportError(
            f"{path} is not a torchvision ResNet state_dict: unexpected keys {shown} "
            f"(a different architecture or a wrapped model, e.g. keys prefixed with 'module.')")
    spec = match_resnet(weights, TORCH_STYLE_MODELS, model, "torchvision", topology,
                        {"resnet50-keras": KERAS_TOPOLOGY.format(source="torchvision")})
    return ImportedWeights(
        model=spec.name, weights=weights, num_classes=int(weights["head.kernel"].shape[1]),
        input_channels=int(weights["conv1.kernel"].shape[2]), source="torchvision", source_file=str(path),
        source_sha256=file_sha256(path), source_format="torch state_dict (weights_only=True)",
        notes=(f"topology: {topology}, {spec.reference_impl}",), dropped=tuple(dropped),
    )
