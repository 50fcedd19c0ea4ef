"""torchvision-style ResNet names (torchvision and timm share them) -> canonical names, and the
matching of converted weights against the zoo's ResNet specs."""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from zoo.importers.base import WeightsImportError, describe_mismatch
from zoo.models import RESNET_MODELS, ResNetSpec, builtin_model

_CONV = re.compile(r"conv1|layer\d+\.\d+\.conv\d+|layer\d+\.\d+\.downsample\.0")
_BN = re.compile(r"bn1|layer\d+\.\d+\.bn\d+|layer\d+\.\d+\.downsample\.1")
_BN_KINDS = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
#: Shape only: a source input of this size is recorded; ResNet parameters do not depend on it.
IMAGENET_SHAPE = (224, 224)


def torch_layout(value: np.ndarray) -> np.ndarray:
    """torch OIHW conv / [out, in] dense -> canonical HWIO / [in, out] (float32, contiguous)."""
    value = np.asarray(value, dtype=np.float32)
    if value.ndim == 4:
        value = value.transpose(2, 3, 1, 0)
    elif value.ndim == 2:
        value = value.T
    return np.ascontiguousarray(value)


def _canonical_module(module: str) -> str:
    return module.replace("downsample.0", "downsample.conv").replace("downsample.1", "downsample.bn")


def torch_names_to_canonical(state: Mapping[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str], list[str]]:
    """Convert a torchvision/timm ResNet ``state_dict`` (as NumPy arrays). Returns
    ``(canonical weights, dropped keys, keys that are not part of a torchvision-style ResNet)``.
    ``num_batches_tracked`` counters are dropped (zoo's BatchNorm uses a fixed momentum)."""
    out: dict[str, np.ndarray] = {}
    dropped, unknown = [], []
    for key, value in state.items():
        module, _, kind = key.rpartition(".")
        if kind == "num_batches_tracked":
            dropped.append(key)
        elif module == "fc" and kind in ("weight", "bias"):
            out[f"head.{'kernel' if kind == 'weight' else 'bias'}"] = torch_layout(value)
        elif _CONV.fullmatch(module) and kind in ("weight", "bias"):
            out[f"{_canonical_module(module)}.{'kernel' if kind == 'weight' else 'bias'}"] = torch_layout(value)
        elif _BN.fullmatch(module) and kind in _BN_KINDS:
            out[f"{_canonical_module(module)}.{_BN_KINDS[kind]}"] = np.ascontiguousarray(value, dtype=np.float32)
        else:
            unknown.append(key)
    return out, dropped, unknown


def describe_torch_topology(keys: list[str]) -> str:
    """'bottleneck blocks 3-4-6-3' from the key names, for messages."""
    blocks: dict[int, set[int]] = {}
    for key in keys:
        m = re.match(r"layer(\d+)\.(\d+)\.", key)
        if m:
            blocks.setdefault(int(m.group(1)), set()).add(int(m.group(2)))
    kind = "bottleneck" if any(re.match(r"layer\d+\.\d+\.conv3\.", k) for k in keys) else "basic"
    counts = "-".join(str(len(blocks[s])) for s in sorted(blocks)) or "none"
    return f"{kind} blocks {counts}"


def _expected(spec: ResNetSpec, weights: Mapping[str, np.ndarray]) -> dict[str, tuple[int, ...]]:
    cin = weights["conv1.kernel"].shape[2] if "conv1.kernel" in weights else 3
    ncls = weights["head.kernel"].shape[1] if "head.kernel" in weights else 1000
    return {p.name: p.shape for p in spec.parameters((*IMAGENET_SHAPE, cin), ncls)}


def match_resnet(
    weights: dict[str, np.ndarray],
    candidates: tuple[str, ...],
    requested: str | None,
    source: str,
    topology: str,
    wrong_topology: Mapping[str, str] | None = None,
) -> ResNetSpec:
    """The zoo spec among ``candidates`` that ``weights`` fit exactly (names and shapes), or
    :class:`WeightsImportError` naming the differences. ``requested`` (``--model``) must be one
    of the candidates; ``wrong_topology`` maps other models to why this source cannot fill them."""
    if "conv1.kernel" not in weights or "head.kernel" not in weights:
        raise WeightsImportError(
            f"{source}: this is not a {source} ResNet file (no conv1/fc weights found; "
            f"topology seen: {topology})")
    if requested is not None:
        if requested in (wrong_topology or {}):
            raise WeightsImportError(wrong_topology[requested])
        try:
            spec = builtin_model(requested)
        except KeyError as exc:
            raise WeightsImportError(str(exc.args[0])) from None
        if requested not in candidates:
            raise WeightsImportError(
                f"{source} weights can be imported into {', '.join(candidates)}, not {requested!r}")
        problems = describe_mismatch(_expected(spec, weights), weights)
        if problems:
            raise WeightsImportError(
                f"the {source} file does not fit model {requested!r} ({spec.description}); the file has "
                f"{topology}. Differences in canonical names: {problems}")
        return spec  # type: ignore[return-value]
    specs = [s for s in RESNET_MODELS if s.name in candidates]
    report = []
    for spec in specs:
        problems = describe_mismatch(_expected(spec, weights), weights)
        if not problems:
            return spec
        report.append((problems.count(",") + problems.count(";"), spec.name, problems))
    report.sort()
    closest = report[0]
    raise WeightsImportError(
        f"the {source} file ({topology}) fits none of the zoo models {', '.join(candidates)}; closest is "
        f"{closest[1]!r}: {closest[2]}")
