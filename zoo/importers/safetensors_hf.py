"""Import ResNet weights from a Hugging Face safetensors file into the canonical layout.

Read with ``safetensors.numpy`` (no torch, no pickle). Two namings are recognised:

* **timm** (``timm/resnet18.a1_in1k``, ``timm/resnet50.a1_in1k``, ... ``model.safetensors``):
  torchvision's key names (``conv1``, ``bn1``, ``layer1.0.downsample.0``, ``fc``) and topology
  (stride on the 3x3), so the same conversion as :mod:`zoo.importers.torchvision`. timm variants
  with another stem or shortcut (``resnet50d``: ``conv1.0``, avg-pool downsample) are refused,
  naming the keys that do not fit.
* **transformers** ``ResNetForImageClassification`` (``microsoft/resnet-50``): ``resnet.embedder``,
  ``resnet.encoder.stages.{s}.layers.{b}.layer.{k}`` / ``.shortcut``, ``classifier.1``. Where a
  downsampling bottleneck has its stride is *configuration* (``downsample_in_bottleneck`` in
  ``config.json``), not visible in the weights, so the importer requires the repository's
  ``config.json`` beside the file (or passed as ``config=``) and refuses without it, or when it
  says ``downsample_in_bottleneck`` / ``downsample_in_first_stage`` / a non-ReLU activation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from zoo.checkpoints import CheckpointError, read_safetensors_file
from zoo.importers.base import ImportedWeights, WeightsImportError, cut_list, file_sha256
from zoo.importers.resnet_names import describe_torch_topology, match_resnet, torch_names_to_canonical
from zoo.importers.torchvision import KERAS_TOPOLOGY, TORCH_STYLE_MODELS

_HF_BLOCK = re.compile(r"(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.(.+)")
_HF_UNIT = {"convolution.weight": "weight", "normalization.weight": "weight", "normalization.bias": "bias",
            "normalization.running_mean": "running_mean", "normalization.running_var": "running_var",
            "normalization.num_batches_tracked": "num_batches_tracked"}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file; its header is checked against the file (and the size
    limit) by :func:`zoo.checkpoints.read_safetensors_file` before anything is loaded."""
    from safetensors.numpy import load

    try:
        data = read_safetensors_file(path)
    except CheckpointError as exc:
        raise WeightsImportError(str(exc)) from None
    try:
        return {k: np.asarray(v) for k, v in load(data).items()}
    except Exception as exc:  # safetensors raises its own error types
        raise WeightsImportError(f"{path}: not a readable safetensors file: {exc}") from exc


def is_transformers_naming(keys: list[str]) -> bool:
    return any(k.startswith(("resnet.embedder.", "embedder.", "resnet.encoder.", "encoder.stages.")) for k in keys)


def _unit(rest: str) -> tuple[str, str] | None:
    for suffix, kind in _HF_UNIT.items():
        if rest.endswith("." + suffix):
            return rest[: -len(suffix) - 1], kind
    return None


def transformers_to_torchvision_names(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Rename transformers ResNet keys to torchvision's; returns ``(renamed, unknown keys)``."""
    out, unknown = {}, []
    for key, value in state.items():
        m = _HF_BLOCK.fullmatch(key)
        if key.startswith(("resnet.embedder.embedder.", "embedder.embedder.")):
            unit = _unit(key.split("embedder.embedder", 1)[1])
            if unit and unit[0] == "":
                kind = unit[1]
                out[("conv1." if key.endswith("convolution.weight") else "bn1.") + kind] = value
                continue
        elif m:
            stage, block, rest = int(m.group(1)) + 1, int(m.group(2)), m.group(3)
            prefix = f"layer{stage}.{block}"
            um = re.fullmatch(r"layer\.(\d+)\.(.+)", rest)
            if um and _unit("." + um.group(2)) is not None:
                k, kind = int(um.group(1)) + 1, _unit("." + um.group(2))[1]
                out[f"{prefix}.{'conv' if 'convolution' in rest else 'bn'}{k}.{kind}"] = value
                continue
            sm = re.fullmatch(r"shortcut\.(.+)", rest)
            if sm and _unit("." + sm.group(1)) is not None:
                kind = _unit("." + sm.group(1))[1]
                out[f"{prefix}.downsample.{'0' if 'convolution' in rest else '1'}.{kind}"] = value
                continue
        elif key in ("classifier.1.weight", "classifier.1.bias"):
            out["fc." + key.rsplit(".", 1)[1]] = value
            continue
        unknown.append(key)
    return out, unknown


def _check_transformers_config(path: Path, config: Path | None) -> str:
    config = config or path.with_name("config.json")
    if not config.is_file():
        raise WeightsImportError(
            f"{path} uses transformers' ResNet naming (embedder/encoder.stages). Whether its downsampling "
            "blocks stride on the 3x3 or the first 1x1 conv is set in the repository's config.json "
            f"(downsample_in_bottleneck), not in the weights; put config.json beside the file ({config}) "
            "and run again")
    try:
        cfg = json.loads(config.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsImportError(f"{config}: not readable JSON: {exc}") from exc
    problems = []
    if cfg.get("model_type", "resnet") != "resnet":
        problems.append(f"model_type {cfg.get('model_type')!r}")
    if cfg.get("downsample_in_bottleneck", False):
        problems.append("downsample_in_bottleneck=true (stride on the first 1x1: ResNet v1, not torchvision's v1.5)")
    if cfg.get("downsample_in_first_stage", False):
        problems.append("downsample_in_first_stage=true (the first stage strides; torchvision's does not)")
    if cfg.get("hidden_act", "relu") != "relu":
        problems.append(f"hidden_act {cfg.get('hidden_act')!r} (zoo ResNets use ReLU)")
    if problems:
        raise WeightsImportError(f"{config}: a transformers ResNet that no zoo model reproduces: " + "; ".join(problems))
    return f"transformers ResNet, {config.name}: layer_type {cfg.get('layer_type', '?')}, depths {cfg.get('depths', '?')}"


def import_hf(path: str | Path, model: str | None = None, config: str | Path | None = None) -> ImportedWeights:
    path = Path(path)
    state = read_safetensors(path)
    notes = []
    if is_transformers_naming(list(state)):
        notes.append(_check_transformers_config(path, Path(config) if config else None))
        state, unknown = transformers_to_torchvision_names(state)
        fmt = "safetensors (transformers ResNetForImageClassification naming)"
        if unknown:
            raise WeightsImportError(f"{path}: keys that are not part of a transformers ResNet: {', '.join(unknown[:8])}")
    else:
        fmt = "safetensors (timm/torchvision naming)"
    weights, dropped, unknown = torch_names_to_canonical(state)
    topology = describe_torch_topology(list(state))
    if unknown:
        shown = cut_list(unknown)
        raise WeightsImportError(
            f"{path} is not a torchvision-topology ResNet: unexpected keys {shown} (timm variants such as "
            "resnet50d/resnet50t have a deep stem and average-pool shortcuts, which no zoo model reproduces)")
    spec = match_resnet(weights, TORCH_STYLE_MODELS, model, "hf", topology,
                        {"resnet50-keras": KERAS_TOPOLOGY.format(source="timm/Hugging Face")})
    return ImportedWeights(
        model=spec.name, weights=weights, num_classes=int(weights["head.kernel"].shape[1]),
        input_channels=int(weights["conv1.kernel"].shape[2]), source="hf", source_file=str(path),
        source_sha256=file_sha256(path), source_format=fmt,
        notes=tuple(notes) + (f"topology: {topology}, {spec.reference_impl}",), dropped=tuple(dropped),
    )
